package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/auth"
	"github.com/mgw-project/mgw/gateway/upstream"
)

// dispatch is everything a request needs beyond the routing table, built from one config:
// the upstream clusters and the filter chains. It is half of a snapshot (snapshot.go),
// published with its table in one store; a routing change through the admin API makes a
// new snapshot that shares it.
type dispatch struct {
	clusters  map[string]*upstream.Cluster
	routes    map[string]*filters.Chain // by route key (its API pattern or path prefix)
	listeners map[string]*filters.Chain // by listener name
	joined    map[chainKey]*filters.Chain
	// auth counts REQUESTs sent before HELLO; nil when no app is configured (a demo or
	// trusted setup).
	auth *auth.Authenticator
	// helloAuth checks the HELLOs of a listener, by name: of those with auth in their
	// own filter chain (with that entry's options: a listener's {auth: {replay: true}}
	// makes its HELLOs carry a fresh nonce), and of all of them when a route has auth
	// (its requests may come on any listener and sign with the HELLO's identity, and push
	// trusts that identity). Apps being configured is not enough: a listener without auth
	// is a trusted one, and its HELLO binds its app and device unverified.
	helloAuth map[string]*auth.Authenticator
	cancel    context.CancelFunc
}

func buildDispatch(g *Gateway, cfg *config.Config, demoAddr string) (*dispatch, error) {
	d := &dispatch{
		clusters:  make(map[string]*upstream.Cluster, len(cfg.Clusters)),
		routes:    make(map[string]*filters.Chain, len(cfg.Routes)),
		listeners: make(map[string]*filters.Chain, len(cfg.Listeners)),
		joined:    make(map[chainKey]*filters.Chain, len(cfg.Listeners)*len(cfg.Routes)),
	}
	resolve := func(host string) (string, error) {
		if host == "@demo" && demoAddr != "" {
			return demoAddr, nil
		}
		return "", fmt.Errorf("host %q: only @demo is special, and only with demo.enabled", host)
	}
	for i := range cfg.Clusters {
		c, err := upstream.New(&cfg.Clusters[i], upstream.Options{Resolve: resolve, Logger: g.log, Metrics: g.set, Engine: g.engine})
		if err != nil {
			d.close()
			return nil, fmt.Errorf("clusters[%d] (%s): %w", i, cfg.Clusters[i].Name, err)
		}
		d.clusters[cfg.Clusters[i].Name] = c
	}
	reg := g.filters
	env := filters.Env{Apps: cfg.Apps, Getenv: g.opts.Getenv, Logger: g.log,
		AccessLogger: g.accessLg, Metrics: g.set, Fleet: g.fleetFilters}
	routeAuth, anyAuth := false, false
	for i := range cfg.Routes {
		routeAuth = routeAuth || cfg.Routes[i].Filters.Has(auth.Name)
	}
	for i := range cfg.Listeners {
		anyAuth = anyAuth || routeAuth || cfg.Listeners[i].Filters.Has(auth.Name)
	}
	// Each filter checks its own options, so a config's mistakes are found as its chains
	// are built: report them all, as config.Validate does its own.
	var errs []error
	d.helloAuth = make(map[string]*auth.Authenticator, len(cfg.Listeners))
	if len(cfg.Apps) > 0 || anyAuth {
		// Also with no apps where auth is configured: then no HELLO passes, as no
		// request does.
		e := env
		e.Path, e.Name, e.State = "apps", "hello", reg.State()
		a, err := auth.New(&e)
		if err != nil {
			d.close()
			return nil, err
		}
		d.auth = a
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		path := fmt.Sprintf("listeners[%d]", i)
		j := l.Filters.Index(auth.Name)
		switch {
		case j >= 0 && l.Filters[j].Options != nil:
			e := env
			e.Path, e.Name, e.State = path, "hello", reg.State()
			e.Options, e.OptionsPath = l.Filters[j].Options, l.FilterUses(path)[j].OptionsPath
			a, err := auth.New(&e)
			if err != nil {
				continue // the listener's chain, built from the same options, reports it
			}
			d.helloAuth[l.Name] = a.ForHello()
		case j >= 0 || routeAuth:
			d.helloAuth[l.Name] = d.auth
		}
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		e := env
		e.Name = l.Name
		path := fmt.Sprintf("listeners[%d]", i)
		ch, err := reg.Build(path, l.FilterUses(path), e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.listeners[l.Name] = ch
		warnListenerAuthOnPaths(g.log, path, l, cfg.Routes)
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if err := checkPathAuth(i, r); err != nil {
			errs = append(errs, err)
			continue
		}
		e := env
		e.Name = routeKey(r)
		path := fmt.Sprintf("routes[%d]", i)
		ch, err := reg.Build(path, r.FilterUses(path), e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.routes[routeKey(r)] = ch
		if err := checkUnusedOptions(reg, path, r, e); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		d.close()
		return nil, errors.Join(errs...)
	}
	for l, lc := range d.listeners {
		for r, rc := range d.routes {
			d.joined[chainKey{l, r}] = filters.Join(lc, rc)
		}
	}
	return d, nil
}

// checkUnusedOptions checks the options a route gives, in the route-level key of the
// first config format, for a filter it does not list (`filters: [auth]` beside
// `ratelimit: {rate: 100/m}`). They were always checked and ignored, and still are: built
// once, apart from the live stores and metrics, then dropped. A filter not registered
// has no one to check them.
func checkUnusedOptions(reg *filters.Registry, path string, r *config.Route, e filters.Env) error {
	var uses []config.FilterUse
	for _, u := range r.UnusedFilterOptions(path) {
		if slices.Contains(reg.Names(), u.Name) {
			uses = append(uses, u)
		}
	}
	if len(uses) == 0 {
		return nil
	}
	e.State, e.Metrics = filters.NewState(), metrics.NewSet()
	if _, err := reg.Build(path, uses, e); err != nil {
		return err
	}
	for _, u := range uses {
		e.Logger.Warn("options for a filter the route does not list: checked, not used",
			"field", u.OptionsPath, "filter", u.Name)
	}
	return nil
}

// checkPathAuth refuses auth on a path route. A proxied request has no operation type and
// streams its body past the filters, so its signature could cover neither its method,
// path nor body: one signature over nothing would admit any request under the prefix.
func checkPathAuth(i int, r *config.Route) error {
	if r.Path == "" {
		return nil
	}
	if j := r.Filters.Index(auth.Name); j >= 0 {
		return fmt.Errorf("routes[%d].filters[%d]: %q cannot guard path route %q: a proxied request's method, path and streamed body are not signed; put auth on an api route", i, j, auth.Name, r.Path)
	}
	return nil
}

// warnListenerAuthOnPaths warns of auth on an HTTP listener when path routes exist: it
// refuses that listener's plain requests to them with 401 (checkPathAuth says why), which
// the config check cannot call a mistake (the listener may be meant for API calls only).
func warnListenerAuthOnPaths(log *slog.Logger, path string, l *config.Listener, routes []config.Route) {
	if l.Protocol != "http1" || !l.Filters.Has(auth.Name) {
		return
	}
	for i := range routes {
		if routes[i].Path != "" {
			log.Warn("auth on an HTTP listener refuses its plain requests to path routes with 401; put auth on the api routes to proxy paths through this listener",
				"field", path+".filters", "path_route", fmt.Sprintf("routes[%d] %s", i, routes[i].Path))
			return
		}
	}
}

type chainKey struct{ listener, route string }

// chain returns the filters a request on listener, routed to route, passes: the
// listener's, then the route's. route "" is a request no route matched.
func (d *dispatch) chain(listener, route string) *filters.Chain {
	if c, ok := d.joined[chainKey{listener, route}]; ok {
		return c
	}
	return d.listeners[listener]
}

// routeKey is how the routing table names a route (route.Route.Key).
func routeKey(r *config.Route) string {
	if r.API != "" {
		return r.API
	}
	return r.Path
}

// start begins the clusters' active health checks.
func (d *dispatch) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for _, c := range d.clusters {
		c.Start(ctx)
	}
}

func (d *dispatch) close() {
	if d.cancel != nil {
		d.cancel()
	}
	for _, c := range d.clusters {
		c.Close()
	}
}

// maxTimeout is the longest request timeout of any cluster: how long a request that
// started on this dispatch may still use it.
func (d *dispatch) maxTimeout() time.Duration {
	var m time.Duration
	for _, c := range d.clusters {
		m = max(m, c.Timeout())
	}
	return m
}

// timeout is a request's deadline on a route: the route's own timeout, else its cluster's.
func (d *dispatch) timeout(route time.Duration, cluster string) time.Duration {
	if route > 0 {
		return route
	}
	if c := d.clusters[cluster]; c != nil {
		return c.Timeout()
	}
	return 0
}

// hello checks an MMTP HELLO; nil means accepted.
func (d *dispatch) hello(req *codec.Request) *codec.Response {
	a := d.helloAuth[req.Conn.Listener]
	if a == nil {
		return nil
	}
	return a.Hello(context.Background(), req)
}

// helloRequired answers a REQUEST sent before HELLO on a listener that requires one,
// counted with auth's failures when auth is configured.
func (d *dispatch) helloRequired() *codec.Response {
	if d.auth == nil {
		return auth.HelloRequiredResponse()
	}
	return d.auth.HelloRequired()
}
