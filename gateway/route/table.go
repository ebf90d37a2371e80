package route

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// Route is one compiled route of a Table. It is read-only; its methods may be called from
// any goroutine.
type Route struct {
	// Key names the route in metrics, logs and the admin API: its API pattern
	// ("alipay.trade.pay", "alipay.*", "*") or, for a plain HTTP route, its path prefix.
	Key string
	// IsPath is true for a plain HTTP path-prefix route.
	IsPath bool

	cfg     config.Route
	base    effective  // zone switch, label switch or the route's own split
	mesh    *effective // for mesh-only apps; nil when there are none
	force   []force
	fb      map[string][]string // chosen cluster -> fallback order without it
	meshFb  map[string][]string // the same, mesh-tagged clusters only
	fbAll   []string            // fallback order when nothing was chosen
	meshAll []string            // the same, mesh-tagged clusters only
}

// Config returns the route as configured. The maps and slices are shared with the Table:
// read them, don't write to them.
func (r *Route) Config() config.Route { return r.cfg }

type effective struct {
	w  weights
	by string // ByMeshOnlyApp, ByZone, ByLabel or BySplit
	sw string // which switch: the app list, zone name or label key; "" for the split
}

// Table is one immutable routing table. Build it with NewTable; after that all its
// methods are safe for concurrent use and it never changes.
type Table struct {
	cfg      *config.Config
	routes   []*Route // configuration order
	byKey    map[string]*Route
	exact    map[string]*Route
	prefixes []*Route // `prefix.*`, longest prefix first
	star     *Route
	paths    []*Route // longest path first
	meshApps map[string]bool
	// bodyLimits: some route has its own max_body_bytes (HasBodyLimits).
	bodyLimits bool
	ti         *tagIndex
	rand       func() uint64
	m          *routeMetrics // nil: decisions are not counted
}

// NewTable validates the routing parts of cfg (clusters' names and tags, routes, switches,
// instance) and compiles them. It copies what it keeps: cfg may be changed afterwards.
// Errors name the field, e.g. `routes[2].split.mesh: weight -1 is negative`.
func NewTable(cfg *config.Config) (*Table, error) {
	return newTable(cfg, rand.Uint64, nil)
}

func newTable(cfg *config.Config, rnd func() uint64, m *routeMetrics) (*Table, error) {
	cfg = cloneConfig(cfg)
	// The config's own rules, the ones Validate applies to a file: a change through the
	// admin API cannot pass what --check and start refuse, or the other way round.
	if err := cfg.ValidateRouting(); err != nil {
		return nil, err
	}
	ti := newTagIndex(cfg.Clusters)
	t := &Table{
		cfg:      cfg,
		byKey:    map[string]*Route{},
		exact:    map[string]*Route{},
		meshApps: map[string]bool{},
		ti:       ti,
		rand:     rnd,
		m:        m,
	}
	for _, a := range cfg.Switches.MeshOnlyApps {
		t.meshApps[a] = true
	}
	for i := range cfg.Routes {
		rt := t.compile(&cfg.Routes[i])
		if prev, dup := t.byKey[rt.Key]; dup {
			// ValidateRouting refuses duplicates; this keeps a gap there from turning
			// into a route that can never be reached.
			return nil, fmt.Errorf("routes[%d]: %q is also %s", i, rt.Key, describe(prev))
		}
		t.byKey[rt.Key] = rt
		t.routes = append(t.routes, rt)
		t.bodyLimits = t.bodyLimits || rt.cfg.MaxBodyBytes > 0
		switch {
		case rt.IsPath:
			t.paths = append(t.paths, rt)
		case rt.Key == "*":
			t.star = rt
		case strings.HasSuffix(rt.Key, ".*"):
			t.prefixes = append(t.prefixes, rt)
		default:
			t.exact[rt.Key] = rt
		}
	}
	// Longest first; equal lengths cannot both match one name, so the tie order is moot.
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].Key) > len(t.prefixes[j].Key) })
	sort.SliceStable(t.paths, func(i, j int) bool { return len(t.paths[i].Key) > len(t.paths[j].Key) })
	return t, nil
}

// instanceSwitch applies this instance's zone switch, else its label switch. A switch that
// leaves the route no cluster with a positive share does not apply (applySwitch), and the
// next level decides.
func (t *Table) instanceSwitch(split map[string]int) (effective, bool) {
	sw := t.cfg.Switches
	if zone := t.cfg.Instance.Zone; zone != "" {
		if zs, ok := sw.Zones[zone]; ok {
			if w, ok := applySwitch(split, zs, t.ti); ok {
				return effective{w: w, by: ByZone, sw: zone}, true
			}
		}
	}
	if key, ls := labelSwitch(t.cfg.Instance.Labels, sw.Labels); ls != nil {
		if w, ok := applySwitch(split, ls, t.ti); ok {
			return effective{w: w, by: ByLabel, sw: key}, true
		}
	}
	return effective{}, false
}

func describe(r *Route) string {
	if r.IsPath {
		return "the path of another route"
	}
	return "the api of another route"
}

// compile precomputes everything a decision needs, so Decide does no split arithmetic.
func (t *Table) compile(rc *config.Route) *Route {
	rt := &Route{Key: routeKey(rc), IsPath: rc.API == "", cfg: *rc}
	rt.base = effective{w: splitWeights(rc.Split), by: BySplit}
	sw := t.cfg.Switches
	if e, ok := t.instanceSwitch(rc.Split); ok {
		rt.base = e
	}
	if len(t.meshApps) > 0 {
		// Validation guarantees a mesh-tagged cluster exists, so this always applies.
		if w, ok := applySwitch(rc.Split, map[string]int{MeshTag: 100}, t.ti); ok {
			rt.mesh = &effective{w: w, by: ByMeshOnlyApp, sw: strings.Join(sortedCopy(sw.MeshOnlyApps), ",")}
		}
	}
	rt.fbAll = slices.Clone(rc.Fallback)
	rt.fb = map[string][]string{}
	rt.meshFb = map[string][]string{}
	rt.meshAll = []string{}
	for _, c := range rc.Fallback {
		if t.ti.has[c][MeshTag] {
			rt.meshAll = append(rt.meshAll, c)
		}
	}
	for c := range t.ti.has {
		rt.fb[c] = without(rt.fbAll, c)
		rt.meshFb[c] = without(rt.meshAll, c)
	}
	for _, f := range rc.Force {
		rt.force = append(rt.force, compileForce(f))
	}
	return rt
}

func without(list []string, c string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

// HasBodyLimits says whether any route has its own max_body_bytes: when none does, a
// request's body limit is its listener's, with no route to look up for it.
func (t *Table) HasBodyLimits() bool { return t.bodyLimits }

// Routes returns the routes in configuration order. The slice is shared: don't modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Route returns the route whose Key is exactly key, or nil.
func (t *Table) Route(key string) *Route { return t.byKey[key] }

// Config returns the configuration this table was built from. It is shared: read it,
// don't write to it.
func (t *Table) Config() *config.Config { return t.cfg }

// Match returns the route for an operation type: an exact route, else the `prefix.*`
// route with the longest prefix that op starts with (`a.b.*` matches `a.b.c` and `a.b.c.d`
// but not `a.b`), else the `*` route; nil when none matches.
func (t *Table) Match(op string) *Route {
	if r, ok := t.exact[op]; ok {
		return r
	}
	for _, r := range t.prefixes {
		if strings.HasPrefix(op, r.Key[:len(r.Key)-1]) {
			return r
		}
	}
	return t.star
}

// APIByPath says whether an HTTP API call for op, with request-target target, is routed
// by path instead: no API route matches op, and a path route matches (Matching: "whose
// operation matches no API route, is matched by path"). False at once when a `*` route
// takes every operation or no path route exists.
func (t *Table) APIByPath(op, target string) bool {
	return t.APIsMayGoByPath() && t.Match(op) == nil && t.MatchPath(targetPath(target)) != nil
}

// APIsMayGoByPath says whether APIByPath can be true at all: no `*` route, some path
// route. Asked first, it spares the usual table the operation's parse.
func (t *Table) APIsMayGoByPath() bool { return t.star == nil && len(t.paths) > 0 }

// MatchPath returns the plain HTTP route with the longest path prefix matching path (its
// query, if any, is ignored), or nil. Matching is segment-aware: prefix `/api` matches
// `/api`, `/api/` and `/api/x` but not `/apix`; a prefix ending in '/' (`/api/`) matches
// only paths that start with it; `/` matches every path.
func (t *Table) MatchPath(path string) *Route {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for _, r := range t.paths {
		if pathHasPrefix(path, r.Key) {
			return r
		}
	}
	return nil
}

func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// Effective is the split in force for a route on this instance, and what decided it.
type Effective struct {
	// API is the route's Key.
	API string `json:"api"`
	// Split is the share of each cluster in percent (summing to 100; zero shares shown).
	Split map[string]float64 `json:"split"`
	// DecidedBy is mesh_only_app, zone, label or split.
	DecidedBy string `json:"decided_by"`
	// Switch names the switch that decided: the zone, the label key, or the mesh-only
	// app; empty for the split.
	Switch string `json:"switch,omitempty"`
	// Configured is the route's own split, as written.
	Configured map[string]int `json:"configured"`
	Sticky     string         `json:"sticky"`
	Fallback   []string       `json:"fallback"`
}

// Effective returns the split in force for rt when called by app ("" for an app that is
// not mesh-only). It needs no request; force lists are per request and not reflected.
func (t *Table) Effective(rt *Route, app string) Effective {
	e, fb := t.effectiveFor(rt, app)
	sw := e.sw
	if e.by == ByMeshOnlyApp {
		sw = app
	}
	if fb == nil {
		fb = []string{}
	}
	sticky := rt.cfg.Sticky
	if sticky == "" {
		sticky = StickyDevice
	}
	return Effective{
		API:        rt.Key,
		Split:      e.w.asMap(),
		DecidedBy:  e.by,
		Switch:     sw,
		Configured: rt.cfg.Split,
		Sticky:     sticky,
		Fallback:   fb,
	}
}

func (t *Table) effectiveFor(rt *Route, app string) (*effective, []string) {
	if rt.mesh != nil && app != "" && t.meshApps[app] {
		return rt.mesh, rt.meshAll
	}
	return &rt.base, rt.fbAll
}

// MatchRequest finds the route for req: by operation type when it has one (Match), and
// for an HTTP request that has none or whose operation matches no API route, by the path
// of its target (MatchPath). nil means no route: answer 404 no_route.
func (t *Table) MatchRequest(req *codec.Request) *Route {
	if req.Operation != "" {
		if rt := t.Match(req.Operation); rt != nil {
			return rt
		}
	}
	if req.Protocol != codec.HTTP1 || len(t.paths) == 0 {
		return nil
	}
	return t.MatchPath(targetPath(req.Target))
}

// targetPath is a request-target's path (and query): the target itself in origin-form,
// what follows the authority in absolute-form ("http://host/path").
func targetPath(target string) string {
	if strings.HasPrefix(target, "/") {
		return target
	}
	if i := strings.Index(target, "//"); i >= 0 {
		rest := target[i+2:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return rest[j:]
		}
		return "/"
	}
	return target
}
