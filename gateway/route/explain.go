package route

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mgw-project/mgw/codec"
)

// HashScore is one cluster's sticky hash value u in (0,1) and rendezvous score -w/ln(u).
type HashScore struct {
	U     float64 `json:"u"`
	Score float64 `json:"score"`
}

// Explanation is a decision with its reasons, for the admin API and `mgw route explain`.
type Explanation struct {
	// Operation is the request's operation type ("" for a plain HTTP request).
	Operation string   `json:"operation,omitempty"`
	Route     string   `json:"route"`
	Cluster   string   `json:"cluster"`
	Fallback  []string `json:"fallback"`
	DecidedBy string   `json:"decided_by"`
	// Switch names the switch in force (zone, label key, mesh-only app); "" for the split.
	Switch string `json:"switch,omitempty"`
	// Force describes the force entry that matched, if any.
	Force string `json:"force,omitempty"`
	// Split is the split the decision chose from, in percent.
	Split map[string]float64 `json:"split"`
	// Sticky is the route's configured sticky kind; StickySource what the key really was
	// (device, user, app, client, or random when there was none).
	Sticky       string               `json:"sticky"`
	StickySource string               `json:"sticky_source"`
	StickyKey    string               `json:"sticky_key,omitempty"`
	Hash         map[string]HashScore `json:"hash,omitempty"`
	Retry        bool                 `json:"retry"`
	Reason       string               `json:"reason"`
}

// Explain is Decide with its reasons. It does not count the decision in the metrics, and
// for a `none` (random) route the cluster it shows is one random draw.
func (t *Table) Explain(rt *Route, req *codec.Request) Explanation {
	ex := Explanation{Operation: req.Operation, Route: rt.Key, Sticky: rt.cfg.Sticky}
	if ex.Sticky == "" {
		ex.Sticky = StickyDevice
	}
	d := t.decide(rt, req, &ex)
	ex.Cluster, ex.DecidedBy, ex.Retry = d.Cluster, d.DecidedBy, d.Retry
	ex.Fallback = append([]string{}, d.Fallback...)
	ex.Reason = reason(&ex)
	return ex
}

func reason(ex *Explanation) string {
	var b strings.Builder
	switch {
	case ex.Cluster == "":
		b.WriteString("no cluster can take this request (every candidate excluded)")
	case ex.DecidedBy == ByForce && ex.Split == nil:
		fmt.Fprintf(&b, "%s", ex.Force)
	default:
		if ex.Force != "" {
			fmt.Fprintf(&b, "%s; then ", ex.Force)
		}
		switch ex.DecidedBy {
		case ByMeshOnlyApp:
			fmt.Fprintf(&b, "app %s is mesh-only: split %s", ex.Switch, fmtSplit(ex.Split))
		case ByZone:
			fmt.Fprintf(&b, "zone switch %s: split %s", ex.Switch, fmtSplit(ex.Split))
		case ByLabel:
			fmt.Fprintf(&b, "label switch %s: split %s", ex.Switch, fmtSplit(ex.Split))
		case BySplit:
			fmt.Fprintf(&b, "route split %s", fmtSplit(ex.Split))
		default:
			fmt.Fprintf(&b, "split %s", fmtSplit(ex.Split))
		}
		if ex.StickySource == stickyRandom {
			b.WriteString("; no sticky key, picked at random")
		} else {
			fmt.Fprintf(&b, "; %s %q hashes to %s", ex.StickySource, ex.StickyKey, ex.Cluster)
		}
	}
	if len(ex.Fallback) > 0 {
		fmt.Fprintf(&b, "; fallback %s", strings.Join(ex.Fallback, " > "))
	}
	return b.String()
}

func fmtSplit(m map[string]float64) string {
	return "{" + JoinSorted(m, "%s=%.4g%%", ", ") + "}"
}

// JoinSorted formats each entry of m with format (given the key, then the value), in key
// order, joined by sep: how splits and shares are shown to people, stably.
func JoinSorted[V any](m map[string]V, format, sep string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf(format, k, m[k]))
	}
	return strings.Join(parts, sep)
}
