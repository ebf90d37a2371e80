package gateway

import (
	"context"
	"fmt"
	"slices"
	"time"

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
	// auth checks MMTP HELLOs; nil when no app is configured (a demo or trusted setup),
	// where a HELLO binds its app and device unverified.
	auth *auth.Authenticator
	// helloAuth names the listeners whose HELLOs auth checks: those with auth in their
	// own filter chain, all of them when a route has it (its requests may come on any
	// listener and sign with the HELLO's identity, and push trusts that identity). Apps
	// being configured is not enough: a listener without auth is a trusted one.
	helloAuth map[string]bool
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
		c, err := upstream.New(&cfg.Clusters[i], upstream.Options{Resolve: resolve, Logger: g.log, Metrics: g.set})
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
		routeAuth = routeAuth || slices.Contains(cfg.Routes[i].Filters, auth.Name)
	}
	d.helloAuth = make(map[string]bool, len(cfg.Listeners))
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		d.helloAuth[l.Name] = routeAuth || slices.Contains(l.Filters, auth.Name)
		anyAuth = anyAuth || d.helloAuth[l.Name]
	}
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
		e := env
		e.Name, e.Listener = l.Name, l
		ch, err := reg.Build(fmt.Sprintf("listeners[%d]", i), l.Filters, e)
		if err != nil {
			d.close()
			return nil, err
		}
		d.listeners[l.Name] = ch
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if err := checkPathAuth(i, r); err != nil {
			d.close()
			return nil, err
		}
		e := env
		e.Name, e.Route = routeKey(r), r
		ch, err := reg.Build(fmt.Sprintf("routes[%d]", i), r.Filters, e)
		if err != nil {
			d.close()
			return nil, err
		}
		d.routes[routeKey(r)] = ch
	}
	for l, lc := range d.listeners {
		for r, rc := range d.routes {
			d.joined[chainKey{l, r}] = filters.Join(lc, rc)
		}
	}
	return d, nil
}

// checkPathAuth refuses auth on a path route. A proxied request has no operation type and
// streams its body past the filters, so its signature could cover neither its method,
// path nor body: one signature over nothing would admit any request under the prefix.
func checkPathAuth(i int, r *config.Route) error {
	if r.Path == "" {
		return nil
	}
	for j, n := range r.Filters {
		if n == auth.Name {
			return fmt.Errorf("routes[%d].filters[%d]: %q cannot guard path route %q: a proxied request's method, path and streamed body are not signed; put auth on an api route", i, j, n, r.Path)
		}
	}
	return nil
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
	if d.auth == nil || !d.helloAuth[req.Conn.Listener] {
		return nil
	}
	return d.auth.Hello(context.Background(), req)
}

// helloRequired answers a REQUEST sent before HELLO on a listener that requires one,
// counted with auth's failures when auth is configured.
func (d *dispatch) helloRequired() *codec.Response {
	if d.auth == nil {
		return auth.HelloRequiredResponse()
	}
	return d.auth.HelloRequired()
}
