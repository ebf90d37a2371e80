package route

import (
	"fmt"

	"github.com/mgw-project/mgw/codec"
)

// Decision is where one request goes. The gateway owns it for the request's lifetime; it
// is not safe for concurrent use (Next advances it).
type Decision struct {
	Route *Route
	// Cluster is the first cluster to try; "" when the route leaves this request nowhere
	// to go (every candidate excluded by a force `never` entry): answer 503 unavailable.
	Cluster string
	// Fallback is the order to try when Cluster cannot serve, without Cluster. For a
	// mesh-only app it holds only mesh-tagged clusters; a force `never` cluster is left out.
	// A request forced to a cluster falls back like any other. Shared with the Table: read
	// it, don't modify it.
	Fallback []string
	// DecidedBy is force, mesh_only_app, zone, label or split.
	DecidedBy string
	// Retry is the route's permission to resend a request that may have reached a backend.
	Retry bool

	next int
	m    *routeMetrics
}

// Next returns the cluster to try after the current one failed, or ok=false when the
// request must fail (502/503 with the `error` header, the gateway's choice by error).
// sent says whether the failed attempt may have reached a backend (any byte of the request
// written); such a request moves on only when the route allows retries. Errors that never
// reach a backend (no healthy host, connection refused, failure before writing) pass
// sent=false. Each fallback it returns is counted in mgw_route_fallbacks_total; a gateway
// that walks Fallback itself calls Router.CountFallback instead.
func (d *Decision) Next(sent bool) (cluster string, ok bool) {
	if sent && !d.Retry {
		return "", false
	}
	if d.next >= len(d.Fallback) {
		return "", false
	}
	from := d.Cluster
	if d.next > 0 {
		from = d.Fallback[d.next-1]
	}
	to := d.Fallback[d.next]
	d.next++
	if d.m != nil && d.Route != nil {
		d.m.fallback(d.Route.Key, from, to)
	}
	return to, true
}

// Decide picks the cluster for req on route rt (which must come from this table: Match,
// MatchPath or Route), in this order: the route's force entries (first match wins), the
// mesh-only app switch, this instance's zone switch, its label switch, the route's own
// split. Within a split the sticky key picks the cluster (docs/routing.md). Safe for
// concurrent use; it counts the decision in mgw_route_decisions_total when the table
// belongs to a Router.
func (t *Table) Decide(rt *Route, req *codec.Request) Decision {
	d := t.decide(rt, req, nil)
	if t.m != nil {
		t.m.decision(rt.Key, d.Cluster, d.DecidedBy)
	}
	return d
}

func (t *Table) decide(rt *Route, req *codec.Request, ex *Explanation) Decision {
	d := Decision{Route: rt, Retry: rt.cfg.Retry, m: t.m}
	never := ""
	for i := range rt.force {
		f := &rt.force[i]
		what, ok := f.match(req)
		if !ok {
			continue
		}
		d.DecidedBy = ByForce
		if ex != nil {
			verb := "to"
			if f.never {
				verb = "never to"
			}
			ex.Force = fmt.Sprintf("force[%d]: %s goes %s %s", i, what, verb, f.cluster)
		}
		if !f.never {
			d.Cluster = f.cluster
			d.Fallback = rt.fb[f.cluster]
			return d
		}
		never = f.cluster
		break
	}

	eff, fbs := &rt.base, rt.fb
	if rt.mesh != nil && len(t.meshApps) > 0 && t.meshApps[req.App()] {
		eff, fbs = rt.mesh, rt.meshFb
	}
	if d.DecidedBy == "" {
		d.DecidedBy = eff.by
	}
	if ex != nil {
		ex.Split = eff.w.asMap()
		ex.Switch = eff.sw
		if eff.by == ByMeshOnlyApp {
			ex.Switch = req.App()
		}
	}

	if only, ok := eff.w.only(never); ok && ex == nil {
		// One cluster can win: every key, sticky or not, goes to it, so neither the key
		// (an address formatted per request) nor a hash per cluster is needed. Most
		// routes are not mid-cutover; this is their path.
		d.Cluster = only
	} else {
		key, src := stickyKey(rt.cfg.Sticky, req)
		if src == stickyRandom {
			d.Cluster = pickRandom(eff.w, never, t.rand)
		} else {
			d.Cluster = pickHash(rt.Key, key, eff.w, never, ex)
		}
		if ex != nil {
			ex.StickySource, ex.StickyKey = src, key
		}
	}
	if d.Cluster == "" {
		// Every positive share is excluded: the fallback list is all that is left.
		all := rt.fbAll
		if eff.by == ByMeshOnlyApp {
			all = rt.meshAll
		}
		all = without(all, never)
		if len(all) > 0 {
			d.Cluster, d.Fallback = all[0], all[1:]
		}
		return d
	}
	d.Fallback = fbs[d.Cluster]
	if never != "" {
		d.Fallback = without(d.Fallback, never)
	}
	return d
}

const stickyRandom = "random"

// stickyKey returns the key the split hashes and where it came from. An empty device,
// user or app id falls back to the client's IP address (without port, IPv4-mapped IPv6
// unmapped), and without that to per-request randomness.
func stickyKey(kind string, req *codec.Request) (key, source string) {
	switch kind {
	case "", StickyDevice:
		key, source = req.Device(), StickyDevice
	case StickyUser:
		key, source = req.User(), StickyUser
	case StickyApp:
		key, source = req.App(), StickyApp
	case StickyNone:
		return "", stickyRandom
	}
	if key != "" {
		return key, source
	}
	if a := req.Conn.ClientAddr.Addr(); a.IsValid() {
		return a.Unmap().String(), StickyClient
	}
	return "", stickyRandom
}

// pickHash is weighted rendezvous hashing: the cluster with the highest -w/ln(u) wins,
// u = unitHash(routeKey, key, cluster). Clusters with a zero share, and skip, never win;
// ties go to the cluster whose name sorts first.
func pickHash(routeKey, key string, w weights, skip string, ex *Explanation) string {
	best, bestScore := "", 0.0
	for i, name := range w.names {
		if w.pct[i] <= 0 || name == skip {
			continue
		}
		u := unitHash(routeKey, key, name)
		s := score(w.pct[i], u)
		if ex != nil {
			if ex.Hash == nil {
				ex.Hash = map[string]HashScore{}
			}
			ex.Hash[name] = HashScore{U: u, Score: s}
		}
		if best == "" || s > bestScore {
			best, bestScore = name, s
		}
	}
	return best
}

// pickRandom picks a cluster with probability proportional to its share.
func pickRandom(w weights, skip string, rnd func() uint64) string {
	total := 0.0
	for i, name := range w.names {
		if name != skip {
			total += w.pct[i]
		}
	}
	if total <= 0 {
		return ""
	}
	x := float64(rnd()>>11) / (1 << 53) * total
	last := ""
	for i, name := range w.names {
		if name == skip || w.pct[i] <= 0 {
			continue
		}
		last = name
		if x < w.pct[i] {
			return name
		}
		x -= w.pct[i]
	}
	return last // rounding left x just over the end
}
