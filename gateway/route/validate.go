package route

import (
	"maps"
	"slices"

	"github.com/mgw-project/mgw/config"
)

// Limits on what a route or switch may hold; the config package defines and checks
// them (config.Validate and ValidateRouting are the one validator).
const (
	MaxWeight        = config.MaxWeight
	MaxSplitClusters = config.MaxSplitClusters
	MaxForceEntries  = config.MaxForceEntries
	MaxForceIDs      = config.MaxForceIDs
	MaxRoutes        = config.MaxRoutes
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

// sortedKeys walks a map in a stable order, so errors and results do not change between
// runs.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
