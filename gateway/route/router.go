package route

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// ErrNoSuchRoute is returned (wrapped) by changes naming a route the table doesn't have.
var ErrNoSuchRoute = errors.New("no such route")

// ErrConflict is returned (wrapped) by a change that a Holder refused because what it
// was derived from changed elsewhere meanwhile (a fleet store's compare failed).
var ErrConflict = errors.New("conflicting change")

// ErrUnavailable is returned (wrapped) by a change that a Holder could not store (the
// fleet store is unreachable); the table in force stays.
var ErrUnavailable = errors.New("store unavailable")

// RouterOptions configure a Router. The zero value is usable.
type RouterOptions struct {
	// Logger receives one record per change, with old and new values; nil: slog.Default().
	Logger *slog.Logger
	// Metrics receives mgw_route_decisions_total and mgw_route_fallbacks_total; nil: none.
	Metrics *metrics.Set
	// Rand is the random source of `sticky: none` routes (and of requests with no sticky
	// key); nil: math/rand/v2. It is called from many goroutines at once.
	Rand func() uint64
	// Holder keeps the table in force; nil: the Router keeps it in its own atomic pointer.
	// A gateway keeps it inside the one snapshot of everything a request consults, so that
	// a change publishes the table together with the clusters and filters it names.
	Holder Holder
}

// Holder keeps a Router's table in force. The Router calls Store only with its change
// lock held, so stores are serialised; Load may be called from any goroutine.
type Holder interface {
	Load() *Table
	// Store publishes t, built from the table in force by a routing change (a split,
	// sticky, fallback, retry or switch change: clusters, apps and filters are as before).
	// An error refuses the change and leaves the table in force.
	Store(t *Table) error
}

// ownHolder is the Holder of a Router used on its own (tests, tools).
type ownHolder struct{ p atomic.Pointer[Table] }

func (h *ownHolder) Load() *Table { return h.p.Load() }

func (h *ownHolder) Store(t *Table) error { h.p.Store(t); return nil }

// Router holds the routing table in force and applies changes to it. Requests call Load
// (lock-free) and keep the returned Table; changes (admin API, SIGHUP reload) are
// serialised, validated, build a new Table and publish it atomically, so a request in
// flight finishes on the table it started with and none fails because of a change.
type Router struct {
	h    Holder
	mu   sync.Mutex // serialises changes, not reads
	log  *slog.Logger
	m    *routeMetrics
	rand func() uint64
}

// New returns a Router with no table yet: publish the first with Replace or Apply before
// the first Load.
func New(opts RouterOptions) *Router {
	r := &Router{h: opts.Holder, log: opts.Logger, m: newRouteMetrics(opts.Metrics), rand: opts.Rand}
	if r.h == nil {
		r.h = &ownHolder{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.rand == nil {
		r.rand = rand.Uint64
	}
	return r
}

// NewRouter validates cfg's routing parts and builds the first table.
func NewRouter(cfg *config.Config, opts RouterOptions) (*Router, error) {
	r := New(opts)
	t, err := r.Build(cfg)
	if err != nil {
		return nil, err
	}
	if err := r.h.Store(t); err != nil {
		return nil, err
	}
	return r, nil
}

// Build validates cfg's routing parts and compiles them into a table that counts its
// decisions in this Router's metrics. It publishes nothing.
func (r *Router) Build(cfg *config.Config) (*Table, error) {
	return newTable(cfg, r.rand, r.m)
}

// Apply runs publish with the change lock held, so no other change interleaves: publish
// gets the table in force (nil before the first), builds its successor (with Build) and
// publishes it by its own means, and returns it; Apply then logs what changed. A gateway
// reloads this way, publishing the table in one store with the clusters and filters of
// the same config. On error nothing may have been published.
func (r *Router) Apply(publish func(old *Table) (*Table, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.h.Load()
	t, err := publish(old)
	if err != nil {
		return err
	}
	if old != nil {
		r.logDiff(old, t)
	}
	return nil
}

// Load returns the table in force. Call it once per request and use that table for the
// whole request, fallbacks included.
func (r *Router) Load() *Table { return r.h.Load() }

// Decide is the gateway's one call per request: it loads the table, matches req (see
// Table.MatchRequest) and decides. ok is false when no route matches (answer 404
// no_route).
func (r *Router) Decide(req *codec.Request) (d Decision, ok bool) {
	t := r.Load()
	rt := t.MatchRequest(req)
	if rt == nil {
		return Decision{}, false
	}
	return t.Decide(rt, req), true
}

// CountFallback counts one move from cluster from to cluster to on route api (its Key),
// for a gateway that walks Decision.Fallback itself instead of calling Decision.Next.
func (r *Router) CountFallback(api, from, to string) {
	if r.m != nil {
		r.m.fallback(api, from, to)
	}
}

// Replace validates cfg and makes it the table in force (SIGHUP reload). On error the old
// table stays. Every route and switch that differs is logged with old and new values.
func (r *Router) Replace(cfg *config.Config) error {
	return r.Apply(func(*Table) (*Table, error) {
		t, err := r.Build(cfg)
		if err != nil {
			return nil, fmt.Errorf("routing config: %w", err)
		}
		return t, r.h.Store(t)
	})
}

// RouteUpdate is a partial change to one route: nil fields keep their value.
type RouteUpdate struct {
	Split    map[string]int `json:"split,omitempty"`
	Sticky   *string        `json:"sticky,omitempty"`
	Fallback *[]string      `json:"fallback,omitempty"`
	Retry    *bool          `json:"retry,omitempty"`
}

// SetSplit replaces the split of the route whose Key is api and returns its new effective
// split on this instance. Errors name the field: `routes[0].split.mesh: weight -1 is negative`.
func (r *Router) SetSplit(api string, split map[string]int) (Effective, error) {
	return r.UpdateRoute(api, RouteUpdate{Split: split})
}

// UpdateRoute changes the split, sticky kind, fallback order or retry permission of the
// route whose Key is api, validated like the file (errors name the field as in the file:
// `routes[0].split.mesh: weight -1 is negative`), and returns its new effective split.
func (r *Router) UpdateRoute(api string, u RouteUpdate) (Effective, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.h.Load()
	idx := -1
	for i := range old.cfg.Routes {
		if routeKey(&old.cfg.Routes[i]) == api {
			idx = i
			break
		}
	}
	if idx < 0 {
		return Effective{}, fmt.Errorf("route %q: %w", api, ErrNoSuchRoute)
	}
	cfg := cloneConfig(old.cfg)
	rc := &cfg.Routes[idx]
	if u.Split != nil {
		rc.Split = cloneRoute(config.Route{Split: u.Split}).Split
	}
	if u.Sticky != nil {
		rc.Sticky = *u.Sticky
	}
	if u.Fallback != nil {
		rc.Fallback = append([]string{}, (*u.Fallback)...)
	}
	if u.Retry != nil {
		rc.Retry = *u.Retry
	}
	t, err := newTable(cfg, r.rand, r.m)
	if err != nil {
		return Effective{}, err
	}
	if err := r.h.Store(t); err != nil {
		return Effective{}, err
	}
	r.logDiff(old, t)
	return t.Effective(t.byKey[api], ""), nil
}

// SetSwitches replaces all switches and returns every route's new effective split (for an
// app that is not mesh-only).
func (r *Router) SetSwitches(sw config.Switches) ([]Effective, error) {
	return r.changeSwitches(func(s *config.Switches) { *s = sw.Clone() })
}

// SetMeshOnlyApps replaces the mesh-only app list.
func (r *Router) SetMeshOnlyApps(apps []string) ([]Effective, error) {
	return r.changeSwitches(func(s *config.Switches) { s.MeshOnlyApps = append([]string{}, apps...) })
}

// SetZoneSwitches replaces the zone switches ({zone: {tag: percent}}).
func (r *Router) SetZoneSwitches(zones map[string]map[string]int) ([]Effective, error) {
	return r.changeSwitches(func(s *config.Switches) { s.Zones = config.Switches{Zones: zones}.Clone().Zones })
}

// SetLabelSwitches replaces the label switches ({"key" or "key=value": {tag: percent}}).
func (r *Router) SetLabelSwitches(labels map[string]map[string]int) ([]Effective, error) {
	return r.changeSwitches(func(s *config.Switches) { s.Labels = config.Switches{Labels: labels}.Clone().Labels })
}

func (r *Router) changeSwitches(change func(*config.Switches)) ([]Effective, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.h.Load()
	cfg := cloneConfig(old.cfg)
	change(&cfg.Switches)
	t, err := newTable(cfg, r.rand, r.m)
	if err != nil {
		return nil, err
	}
	if err := r.h.Store(t); err != nil {
		return nil, err
	}
	r.logDiff(old, t)
	return t.allEffective(), nil
}

func (t *Table) allEffective() []Effective {
	out := make([]Effective, 0, len(t.routes))
	for _, rt := range t.routes {
		out = append(out, t.Effective(rt, ""))
	}
	return out
}

// logDiff logs every route and switch that differs between two tables, old and new.
func (r *Router) logDiff(old, cur *Table) {
	for _, rt := range cur.routes {
		prev := old.byKey[rt.Key]
		if prev == nil {
			r.log.Info("route added", "api", rt.Key, "split", rt.cfg.Split, "effective", rt.base.w.asMap())
			continue
		}
		if !reflect.DeepEqual(summary(prev), summary(rt)) {
			r.log.Info("route changed", "api", rt.Key, "old", summary(prev), "new", summary(rt),
				"old_effective", prev.base.w.asMap(), "new_effective", rt.base.w.asMap(), "decided_by", rt.base.by)
		}
	}
	for _, rt := range old.routes {
		if cur.byKey[rt.Key] == nil {
			r.log.Info("route removed", "api", rt.Key, "split", rt.cfg.Split)
		}
	}
	if !reflect.DeepEqual(old.cfg.Switches, cur.cfg.Switches) {
		r.log.Info("switches changed", "old", old.cfg.Switches, "new", cur.cfg.Switches)
	}
	if !reflect.DeepEqual(old.cfg.Instance, cur.cfg.Instance) {
		r.log.Info("instance changed", "old", old.cfg.Instance, "new", cur.cfg.Instance)
	}
}

type routeSummary struct {
	Split    map[string]int `json:"split"`
	Sticky   string         `json:"sticky"`
	Fallback []string       `json:"fallback"`
	Retry    bool           `json:"retry"`
	Force    int            `json:"force_entries"`
}

func summary(rt *Route) routeSummary {
	sticky := rt.cfg.Sticky
	if sticky == "" {
		sticky = StickyDevice
	}
	return routeSummary{rt.cfg.Split, sticky, rt.cfg.Fallback, rt.cfg.Retry, len(rt.cfg.Force)}
}
