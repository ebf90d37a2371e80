package route

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mgw-project/mgw/gateway/config"
)

// Limits on what a route or switch may hold. They bound the per-request work (one hash per
// split cluster) and the size of what the admin API accepts.
const (
	MaxWeight        = 1_000_000
	MaxSplitClusters = 64
	MaxForceEntries  = 64
	MaxForceIDs      = 10_000 // devices + users in one force entry
	MaxKeyLen        = 256    // api pattern, path, cluster, tag, app id
	MaxRoutes        = 10_000
)

// MeshTag is the cluster tag that the mesh-only app switch selects. Which clusters are
// "mesh" is decided by their tags, never by their names.
const MeshTag = "mesh"

// Sticky kinds a route may name.
const (
	StickyDevice = "device"
	StickyUser   = "user"
	StickyApp    = "app"
	StickyClient = "client"
	StickyNone   = "none"
)

// routeKey is how a route is named in metrics, logs and the admin API: its API pattern,
// or its path for a plain HTTP route.
func routeKey(rt *config.Route) string {
	if rt.API != "" {
		return rt.API
	}
	return rt.Path
}

// validateAPIPattern accepts "*", "prefix.*" and exact names without '*'.
func validateAPIPattern(field, api string) error {
	if len(api) > MaxKeyLen {
		return fmt.Errorf("%s: %d bytes, over the limit of %d", field, len(api), MaxKeyLen)
	}
	if api == "*" {
		return nil
	}
	if strings.HasPrefix(api, "/") {
		// A leading '/' would make the admin API mistake it for a path route.
		return fmt.Errorf("%s: %q starts with '/'; use path for a path prefix", field, api)
	}
	if strings.HasSuffix(api, ".*") {
		p := strings.TrimSuffix(api, ".*")
		if p == "" || strings.Contains(p, "*") {
			return fmt.Errorf("%s: %q is not an exact name, `prefix.*` or `*`", field, api)
		}
		return nil
	}
	if strings.Contains(api, "*") {
		return fmt.Errorf("%s: %q is not an exact name, `prefix.*` or `*`", field, api)
	}
	return nil
}

// validateSplit checks a split against the known clusters. field is e.g. "routes[2].split".
func validateSplit(field string, split map[string]int, clusters map[string]*config.Cluster) error {
	if len(split) == 0 {
		return fmt.Errorf("%s: empty; name at least one cluster with a positive weight", field)
	}
	if len(split) > MaxSplitClusters {
		return fmt.Errorf("%s: %d clusters, over the limit of %d", field, len(split), MaxSplitClusters)
	}
	sum := 0
	for _, name := range sortedKeys(split) {
		w := split[name]
		if _, ok := clusters[name]; !ok {
			return fmt.Errorf("%s.%s: unknown cluster %q", field, name, name)
		}
		if w < 0 {
			return fmt.Errorf("%s.%s: weight %d is negative", field, name, w)
		}
		if w > MaxWeight {
			return fmt.Errorf("%s.%s: weight %d is over the limit of %d", field, name, w, MaxWeight)
		}
		sum += w
	}
	if sum == 0 {
		return fmt.Errorf("%s: all weights are zero; at least one must be positive", field)
	}
	return nil
}

func validateSticky(field, s string) error {
	switch s {
	case "", StickyDevice, StickyUser, StickyApp, StickyClient, StickyNone:
		return nil
	}
	return fmt.Errorf("%s: %q is not one of device, user, app, client, none", field, s)
}

func validateFallback(field string, fb []string, clusters map[string]*config.Cluster) error {
	if len(fb) > MaxSplitClusters {
		return fmt.Errorf("%s: %d clusters, over the limit of %d", field, len(fb), MaxSplitClusters)
	}
	seen := map[string]bool{}
	for i, c := range fb {
		if _, ok := clusters[c]; !ok {
			return fmt.Errorf("%s[%d]: unknown cluster %q", field, i, c)
		}
		if seen[c] {
			return fmt.Errorf("%s[%d]: cluster %q listed twice", field, i, c)
		}
		seen[c] = true
	}
	return nil
}

func validateForce(field string, fs []config.Force, clusters map[string]*config.Cluster) error {
	if len(fs) > MaxForceEntries {
		return fmt.Errorf("%s: %d entries, over the limit of %d", field, len(fs), MaxForceEntries)
	}
	for i, f := range fs {
		fi := fmt.Sprintf("%s[%d]", field, i)
		if _, ok := clusters[f.Cluster]; !ok {
			return fmt.Errorf("%s.cluster: unknown cluster %q", fi, f.Cluster)
		}
		if len(f.Devices)+len(f.Users) > MaxForceIDs {
			return fmt.Errorf("%s: %d device and user ids, over the limit of %d", fi, len(f.Devices)+len(f.Users), MaxForceIDs)
		}
		if f.Header != nil && (f.Header.Name == "" || len(f.Header.Name) > MaxKeyLen) {
			return fmt.Errorf("%s.header.name: %q must be 1..%d bytes", fi, f.Header.Name, MaxKeyLen)
		}
		if len(f.Devices) == 0 && len(f.Users) == 0 && f.Header == nil {
			return fmt.Errorf("%s: matches nothing; give devices, users or header", fi)
		}
		for j, d := range f.Devices {
			if d == "" {
				return fmt.Errorf("%s.devices[%d]: empty device id", fi, j)
			}
		}
		for j, u := range f.Users {
			if u == "" {
				return fmt.Errorf("%s.users[%d]: empty user id", fi, j)
			}
		}
	}
	return nil
}

// validateRoute checks one route; field is its path in the config, e.g. "routes[3]".
func validateRoute(field string, rt *config.Route, clusters map[string]*config.Cluster) error {
	switch {
	case rt.API != "" && rt.Path != "":
		return fmt.Errorf("%s: both api %q and path %q; give exactly one", field, rt.API, rt.Path)
	case rt.API == "" && rt.Path == "":
		return fmt.Errorf("%s: neither api nor path; give exactly one", field)
	case rt.API != "":
		if err := validateAPIPattern(field+".api", rt.API); err != nil {
			return err
		}
	default:
		if !strings.HasPrefix(rt.Path, "/") || len(rt.Path) > MaxKeyLen {
			return fmt.Errorf("%s.path: %q must start with '/' and be at most %d bytes", field, rt.Path, MaxKeyLen)
		}
	}
	if err := validateSplit(field+".split", rt.Split, clusters); err != nil {
		return err
	}
	if err := validateSticky(field+".sticky", rt.Sticky); err != nil {
		return err
	}
	if err := validateFallback(field+".fallback", rt.Fallback, clusters); err != nil {
		return err
	}
	return validateForce(field+".force", rt.Force, clusters)
}

// validateTagPercents checks one switch {tag: percent}.
func validateTagPercents(field string, tp map[string]int, tags map[string]bool) error {
	if len(tp) == 0 {
		return fmt.Errorf("%s: empty; give {tag: percent}", field)
	}
	sum := 0
	for _, tag := range sortedKeys(tp) {
		p := tp[tag]
		if !tags[tag] {
			return fmt.Errorf("%s.%s: no cluster has tag %q", field, tag, tag)
		}
		if p < 0 || p > 100 {
			return fmt.Errorf("%s.%s: percent %d is not within 0..100", field, tag, p)
		}
		sum += p
	}
	if sum > 100 {
		return fmt.Errorf("%s: percents add up to %d, over 100", field, sum)
	}
	return nil
}

func validateMeshOnlyApps(field string, apps []string, tags map[string]bool) error {
	for i, a := range apps {
		if a == "" || len(a) > MaxKeyLen {
			return fmt.Errorf("%s[%d]: app id %q must be 1..%d bytes", field, i, a, MaxKeyLen)
		}
	}
	if len(apps) > 0 && !tags[MeshTag] {
		return fmt.Errorf("%s: no cluster has tag %q, so these apps could go nowhere", field, MeshTag)
	}
	return nil
}

func validateSwitches(field string, sw *config.Switches, tags map[string]bool) error {
	if err := validateMeshOnlyApps(field+".mesh_only_apps", sw.MeshOnlyApps, tags); err != nil {
		return err
	}
	for _, z := range sortedKeys(sw.Zones) {
		if err := validateTagPercents(field+".zones."+z, sw.Zones[z], tags); err != nil {
			return err
		}
	}
	for _, l := range sortedKeys(sw.Labels) {
		if l == "" || strings.HasPrefix(l, "=") {
			return fmt.Errorf("%s.labels: key %q must be \"key\" or \"key=value\"", field, l)
		}
		if err := validateTagPercents(field+".labels."+l, sw.Labels[l], tags); err != nil {
			return err
		}
	}
	return nil
}

// sortedKeys walks a map in a stable order, so errors and results do not change between
// runs.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
