package gateway

import (
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/gateway/route"
)

// snapshot is everything a request consults, built from one config: the routing table
// and the dispatch (clusters, filter chains, HELLO auth). It is immutable and published
// whole through Gateway.snap, one atomic pointer. A request (MMTP or HTTP API call, proxied
// HTTP request, HELLO) loads it once and uses that one value throughout, fallbacks
// included, so a reload or an admin change is seen whole or not at all: never a route of
// the new config with the filters or clusters of the old.
type snapshot struct {
	table *route.Table
	*dispatch
}

// buildSnapshot is the one way a config becomes a snapshot: `mgw serve -check` (through
// New), Start and Reload (SIGHUP) all call it, so they accept and refuse exactly the same
// configs. It validates the whole config (config.Validate), compiles the routing table
// (whose rules are config's too) and builds the clusters and filter chains. It starts
// nothing and dials nothing: the caller starts the clusters' health checks (start) once it
// publishes the snapshot, or closes it. demoAddr stands in for @demo hosts.
//
// The admin API's routing changes derive their snapshot from the one in force instead
// (snapHolder.Store): they change only the table, so the dispatch is shared.
func (g *Gateway) buildSnapshot(cfg *config.Config, demoAddr string) (*snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tbl, err := g.router.Build(cfg)
	if err != nil {
		return nil, err
	}
	d, err := buildDispatch(g, cfg, demoAddr)
	if err != nil {
		return nil, err
	}
	return &snapshot{table: tbl, dispatch: d}, nil
}

// snapHolder keeps the router's table inside the gateway's snapshot, so that a routing
// change through the admin API publishes a new snapshot (copy-on-write) rather than a
// table beside it. The router calls Store with its change lock held, the same lock
// Reload publishes under, so the snapshot read here is the one in force.
type snapHolder struct{ g *Gateway }

func (h snapHolder) Load() *route.Table {
	if s := h.g.snap.Load(); s != nil {
		return s.table
	}
	return nil
}

func (h snapHolder) Store(t *route.Table) error {
	cur := h.g.snap.Load()
	// In a fleet an admin change is the fleet's: it goes to etcd first (refused there on
	// a conflict), and is published here at once as well as through the watch.
	if h.g.etcd.Load() != nil {
		if err := h.g.writeFleet(cur.table, t); err != nil {
			return err
		}
	}
	h.g.snap.Store(&snapshot{table: t, dispatch: cur.dispatch})
	return nil
}
