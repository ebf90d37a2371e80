// Package filters is mgw's stream-filter chain: the place where gateway logic (auth, rate
// limits, access logs, ...) is added without touching the core.
//
// A Filter sees the protocol-neutral request on the way in (Receive) and the response on
// the way out (Send). Filters are configured by name per listener and per route, each
// with options that only the filter reads: a Registry turns a list of filters
// (config.FilterUse: name, raw options, where they are written) into a Chain, and each
// filter's Factory decodes its options (Env.DecodeOptions), defaults and checks them at
// load time, so that errors name the route and the option (docs/filters.md).
//
// # Semantics
//
// Receive phases run in order; the first filter that answers (401, 429, ...) stops the
// chain: later filters' Receive and the upstream are not called, and x.RejectedBy names
// it. Send phases then run for every filter of the chain, in reverse order, whoever made
// the response, so an access log listed first sees refused requests too.
//
// Filters run on the pool worker that handles the request. They do no I/O of their own
// except the access log, whose lines go through accesslog.Writer (never blocks).
//
// Every filter with a store says what happens when the store cannot decide (full): fail
// open or closed per route (fail_open), counted in mgw_filter_degraded_total. dry_run per
// filter and route evaluates and counts in mgw_filter_dryrun_would_reject_total without
// refusing.
//
// # Wiring (the gateway)
//
// At configuration load (and on every reload, before applying it):
//
//	reg := builtin.NewRegistry()                         // once, kept for the process
//	lc, err := reg.Build("listeners[0]", l.FilterUses("listeners[0]"), filters.Env{Name: l.Name, Apps: cfg.Apps, ...})
//	rc, err := reg.Build("routes[3]", r.FilterUses("routes[3]"), filters.Env{Name: r.API, Apps: cfg.Apps, ...})
//	chain := filters.Join(lc, rc)                         // per (listener, route) in use
//	reg.Sweep()                                           // after all Builds of the new config succeeded
//
// Per request, on the pool worker that handles it:
//
//	x := &filters.Exchange{Listener: ..., Route: ..., Start: now}
//	resp := chain.Receive(ctx, req, x)      // nil: go on
//	if resp == nil {
//		x.Cluster, x.DecidedBy = router.Pick(req)
//		resp = upstream.Call(ctx, req)     // and x.UpstreamLatency, x.BytesIn/Out
//	}
//	chain.Send(ctx, req, resp, x)
//	write(resp)
//
// or equivalently chain.Handle(ctx, req, x, next).
//
// MMTP HELLO is not a request: the session checks it with an auth.Authenticator built for
// the listener (auth.New with the options of the listener's auth entry, if any; its
// ForHello never dry-runs), binds ConnInfo.AppID/DeviceID on success, and on
// a listener with require_hello answers a REQUEST that comes first with
// Authenticator.HelloRequired().
//
// Built-in filters live in subpackages (filters/auth, filters/ratelimit,
// filters/accesslog); filters/builtin returns a Registry with all of them.
package filters
