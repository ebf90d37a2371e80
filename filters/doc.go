// Package filters is mgw's stream-filter chain: the place where gateway logic (auth, rate
// limits, access logs, ...) is added without touching the core.
//
// A Filter sees the protocol-neutral request on the way in (Receive) and the response on
// the way out (Send). Filters are configured by name per listener and per route; a
// Registry turns a list of names plus the route's typed options into a Chain, validating
// every option at load time so that errors name the route and the field.
//
// The gateway's call site, for every request, on the pool worker that handles it:
//
//	x := &filters.Exchange{Listener: ..., Route: ..., Start: now}
//	resp := chain.Receive(ctx, req, x)      // nil: go on
//	if resp == nil {
//		x.Cluster, x.DecidedBy = router.Pick(req)
//		resp = upstream.Call(ctx, req)     // and x.UpstreamLatency
//	}
//	chain.Send(ctx, req, resp, x)
//	write(resp)
//
// or equivalently chain.Handle(ctx, req, x, next).
//
// Built-in filters live in subpackages (filters/auth, filters/ratelimit,
// filters/accesslog); filters/builtin returns a Registry with all of them.
package filters
