package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/auth"
	"github.com/mgw-project/mgw/gateway/route"
	"github.com/mgw-project/mgw/gateway/upstream"
)

// handle runs one API request down the layers and back: the filters' receive phase, the
// router, the upstream call with its fallback order, the send phase. It always returns a
// response. It runs on a request-pool worker and may block on the backend.
func (g *Gateway) handle(ctx context.Context, req *codec.Request) *codec.Response {
	s := g.snap.Load() // the one load of this request: table, filters and clusters agree
	x := &filters.Exchange{Listener: req.Conn.Listener, Start: req.Received}
	rt := s.table.Match(req.Operation)
	var resp *codec.Response
	if rt == nil {
		resp = s.chain(req.Conn.Listener, "").Handle(ctx, req, x, noRoute)
	} else {
		x.Route = rt.Key
		resp = s.chain(req.Conn.Listener, rt.Key).Handle(ctx, req, x,
			func(ctx context.Context, req *codec.Request, x *filters.Exchange) *codec.Response {
				return g.callUpstream(ctx, s, rt, req, x)
			})
	}
	g.m.request(req.Conn.Listener, x, resp.Status, time.Since(req.Received))
	return resp
}

func noRoute(_ context.Context, req *codec.Request, _ *filters.Exchange) *codec.Response {
	return codec.ErrorResponse(http.StatusNotFound, codec.ErrNoRoute, "no route for operation type "+quote(req.Operation))
}

// callUpstream sends req to the cluster the router decides, and down the route's fallback
// order while a cluster cannot serve. A request that may have reached a backend moves on
// only when the route allows retries (Decision.Next enforces it).
func (g *Gateway) callUpstream(ctx context.Context, s *snapshot, rt *route.Route,
	req *codec.Request, x *filters.Exchange) *codec.Response {
	rc := rt.Config()
	if rc.MaxBodyBytes > 0 && len(req.Body) > rc.MaxBodyBytes {
		return codec.ErrorResponse(http.StatusRequestEntityTooLarge, codec.ErrTooLarge,
			"body of "+itoa(len(req.Body))+" bytes is over the route's limit of "+itoa(rc.MaxBodyBytes))
	}
	dec := s.table.Decide(rt, req)
	if late := g.pastDeadline(req, s.timeout(rc.Timeout.D(), dec.Cluster)); late != nil {
		return late
	}
	var resp *codec.Response
	if answer := g.tryClusters(&dec, x, true, func(cluster string) (err error) {
		resp, err = s.clusters[cluster].Call(ctx, req, rc.Timeout.D())
		return err
	}); answer != nil {
		return answer
	}
	return resp
}

// tryClusters calls try with the decided cluster, then down the route's fallback order
// while a cluster cannot serve, and returns nil once one succeeds or else the answer for
// the client. A request that may have reached a backend moves on only when the route
// allows retries (Decision.Next enforces it) and the request can be sent again at all
// (replayable: a streamed body cannot).
func (g *Gateway) tryClusters(dec *route.Decision, x *filters.Exchange, replayable bool, try func(cluster string) error) *codec.Response {
	x.DecidedBy = dec.DecidedBy
	cluster := dec.Cluster
	if cluster == "" {
		return codec.ErrorResponse(http.StatusServiceUnavailable, codec.ErrUnavailable, "no cluster may serve this request")
	}
	for {
		x.Cluster = cluster
		t0 := time.Now()
		err := try(cluster)
		x.UpstreamLatency += time.Since(t0)
		if err == nil {
			return nil
		}
		ue, ok := upstream.AsError(err)
		if !ok {
			ue = &upstream.Error{Status: http.StatusBadGateway, Code: codec.ErrUpstream, Sent: true, Err: err}
		}
		next, more := "", false
		// Invalid or canceled requests stop here: another cluster would fare no better.
		if ue.Retriable() || (ue.Sent && replayable) {
			next, more = dec.Next(ue.Sent)
		}
		if !more {
			return ue.Response()
		}
		g.log.Debug("fallback", "api", x.Route, "from", cluster, "to", next, "err", err)
		cluster, x.DecidedBy = next, "fallback"
	}
}

// proxy forwards a plain HTTP request on the route its path matches, streaming body. It
// returns the backend's response to stream back, or a gateway-made answer. A request
// whose body has started on its way is never resent to a fallback cluster.
func (g *Gateway) proxy(ctx context.Context, req *codec.Request, body io.Reader, length int64) (*upstream.ProxyResponse, *codec.Response) {
	s := g.snap.Load() // the one load of this request, as in handle
	x := &filters.Exchange{Listener: req.Conn.Listener, Start: req.Received}
	path, _, _ := strings.Cut(req.Target, "?")
	rt := s.table.MatchPath(path)
	key := ""
	if rt != nil {
		key = rt.Key
	}
	x.Route = key
	// Unrouted requests pass the listener's filters too, as unrouted API calls do (handle),
	// so a listener's access log sees every request on it.
	chain := s.chain(req.Conn.Listener, key)
	finish := func(status int, resp *codec.Response) {
		if resp == nil {
			resp = &codec.Response{Status: status}
		}
		chain.Send(ctx, req, resp, x)
		g.m.request(req.Conn.Listener, x, status, time.Since(req.Received))
	}
	if chain.Filter(auth.Name) != nil {
		// Only a listener's auth gets here (dispatch refuses it on path routes). It cannot
		// verify a proxied request (see checkPathAuth), so it refuses rather than pass one
		// whose content no signature covers.
		x.RejectedBy = auth.Name
		resp := codec.ErrorResponse(http.StatusUnauthorized, codec.ErrUnauthorized,
			"signature auth covers API requests (POST /api/OP) only; this listener cannot proxy paths")
		finish(resp.Status, resp)
		return nil, resp
	}
	if resp := chain.Receive(ctx, req, x); resp != nil {
		finish(resp.Status, resp)
		return nil, resp
	}
	if rt == nil {
		resp := codec.ErrorResponse(http.StatusNotFound, codec.ErrNoRoute, "no route for path "+quote(path))
		finish(resp.Status, resp)
		return nil, resp
	}
	dec := s.table.Decide(rt, req)
	if late := g.pastDeadline(req, s.timeout(rt.Config().Timeout.D(), dec.Cluster)); late != nil {
		finish(late.Status, late)
		return nil, late
	}
	var resp *upstream.ProxyResponse
	replayable := length == 0 && body == nil
	if answer := g.tryClusters(&dec, x, replayable, func(cluster string) (err error) {
		resp, err = s.clusters[cluster].Forward(ctx, &upstream.ProxyRequest{
			Method: req.Method, Target: req.Target, Host: req.Header.Value("host"), Header: req.Header,
			Body: body, ContentLength: length, ClientAddr: req.Conn.ClientAddr, Timeout: rt.Config().Timeout.D(),
		})
		return err
	}); answer != nil {
		finish(answer.Status, answer)
		return nil, answer
	}
	finish(resp.Status, nil)
	return resp, nil
}
