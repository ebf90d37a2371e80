package route

import (
	"sort"
	"strings"

	"github.com/mgw-project/mgw/config"
)

// Decided-by values, in the order they are checked for a request.
const (
	ByForce       = "force"
	ByMeshOnlyApp = "mesh_only_app"
	ByZone        = "zone"
	ByLabel       = "label"
	BySplit       = "split"
)

// weights is a compiled split: cluster names in ascending order and their shares in
// percent (summing to 100; zero shares are kept so the admin API can show them).
type weights struct {
	names []string
	pct   []float64
}

// only returns the one cluster with a positive share other than skip, when exactly one
// has it: the winner of any pick (pickHash, pickRandom) whatever the key.
func (w weights) only(skip string) (string, bool) {
	found := ""
	for i, name := range w.names {
		if w.pct[i] <= 0 || name == skip {
			continue
		}
		if found != "" {
			return "", false
		}
		found = name
	}
	return found, found != ""
}

func (w weights) asMap() map[string]float64 {
	m := make(map[string]float64, len(w.names))
	for i, n := range w.names {
		m[n] = w.pct[i]
	}
	return m
}

// tagIndex answers which clusters carry a tag.
type tagIndex struct {
	has   map[string]map[string]bool // cluster -> tag set
	byTag map[string][]string        // tag -> clusters, ascending
}

func newTagIndex(clusters []config.Cluster) *tagIndex {
	t := &tagIndex{has: map[string]map[string]bool{}, byTag: map[string][]string{}}
	for _, c := range clusters {
		set := map[string]bool{}
		for _, tag := range c.Tags {
			if !set[tag] {
				set[tag] = true
				t.byTag[tag] = append(t.byTag[tag], c.Name)
			}
		}
		t.has[c.Name] = set
	}
	for _, cs := range t.byTag {
		sort.Strings(cs)
	}
	return t
}

// splitWeights turns a route's integer split into percents.
func splitWeights(split map[string]int) weights {
	names := sortedKeys(split)
	w := weights{names: names, pct: make([]float64, len(names))}
	sum := 0
	for _, n := range names {
		sum += split[n]
	}
	for i, n := range names {
		if sum > 0 {
			w.pct[i] = 100 * float64(split[n]) / float64(sum)
		}
	}
	return w
}

// applySwitch computes the split a switch {tag: percent} imposes on a route:
//
//   - For each tag (ascending), its group is the route's split clusters carrying the tag,
//     or, when the split has none, every cluster carrying it. A cluster joins only the first
//     group it qualifies for. The group shares the tag's percent in the relative weights
//     the split gives its members (equally when those are all zero or absent).
//   - The rest (100 minus the percents) goes to the split's remaining clusters in their
//     relative weights (equally when those are all zero). With no remaining clusters, the
//     groups share everything in proportion to their percents.
//
// ok is false when the result sends traffic nowhere (every share zero): the switch does not
// apply to this route and the next, less specific level decides.
func applySwitch(split map[string]int, tp map[string]int, ti *tagIndex) (weights, bool) {
	acc := map[string]float64{}
	assigned := map[string]bool{}
	rest := 100.0
	for _, tag := range sortedKeys(tp) {
		p := float64(tp[tag])
		rest -= p
		var group []string
		for _, c := range sortedKeys(split) {
			if ti.has[c][tag] && !assigned[c] {
				group = append(group, c)
			}
		}
		if len(group) == 0 {
			for _, c := range ti.byTag[tag] {
				if !assigned[c] {
					group = append(group, c)
				}
			}
		}
		for _, c := range group {
			assigned[c] = true
		}
		share(acc, group, split, p)
	}
	var others []string
	for _, c := range sortedKeys(split) {
		if !assigned[c] {
			others = append(others, c)
		}
	}
	if rest > 0 && len(others) > 0 {
		share(acc, others, split, rest)
	} else {
		for _, c := range others {
			acc[c] += 0 // shown as 0 in the effective split
		}
	}
	total := 0.0
	for _, v := range acc {
		total += v
	}
	if total <= 0 {
		return weights{}, false
	}
	names := sortedKeys(acc)
	w := weights{names: names, pct: make([]float64, len(names))}
	for i, n := range names {
		w.pct[i] = 100 * acc[n] / total
	}
	return w, true
}

// share adds p percent to acc, divided among group by their split weights (equally when
// those are all zero).
func share(acc map[string]float64, group []string, split map[string]int, p float64) {
	if len(group) == 0 {
		return
	}
	sum := 0
	for _, c := range group {
		sum += split[c]
	}
	for _, c := range group {
		if sum > 0 {
			acc[c] += p * float64(split[c]) / float64(sum)
		} else {
			acc[c] += p / float64(len(group))
		}
	}
}

// labelSwitch picks the label switch that applies to this instance: a "key=value" entry
// matching one of its labels beats a bare "key" entry; among equals the smallest key wins,
// so the choice is deterministic.
func labelSwitch(labels map[string]string, sw map[string]map[string]int) (string, map[string]int) {
	var exact, bare string
	for _, k := range sortedKeys(sw) {
		if key, val, ok := strings.Cut(k, "="); ok {
			if v, has := labels[key]; has && v == val && exact == "" {
				exact = k
			}
		} else if _, has := labels[k]; has && bare == "" {
			bare = k
		}
	}
	if exact != "" {
		return exact, sw[exact]
	}
	if bare != "" {
		return bare, sw[bare]
	}
	return "", nil
}
