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

// proxyCall is one plain HTTP request on a path route, from its receive phase to the
// backend's answer head.
type proxyCall struct {
	g       *Gateway
	s       *snapshot
	ctx     context.Context
	req     *codec.Request
	x       filters.Exchange
	chain   *filters.Chain
	dec     route.Decision
	timeout time.Duration
	// interim hears the backend's interim (1xx) answers (upstream.ProxyRequest.Interim);
	// nil drops them.
	interim upstream.Interim

	// forwardAsync's: the whole body, when the call began, and who hears the outcome.
	body []byte
	t0   time.Time // the current cluster's call began
	end  time.Time // its answer came; zero until a backend answered
	// fwd is the request as ForwardAsyncAt takes it (it keeps none of it past the call,
	// so one serves every try), and status the head a backend's answer shows the send
	// filters (finish): each a part of this call, not an allocation of its own.
	fwd    upstream.ProxyRequest
	status codec.Response
	done   func(*upstream.ProxyResponse, *codec.Response)
}

// startProxy runs a proxied request's receive phase and decides its cluster. It returns
// the call to make, or else the gateway's own answer, which has been through the send
// phase and counted.
func (g *Gateway) startProxy(ctx context.Context, req *codec.Request) (*proxyCall, *codec.Response) {
	s := g.snap.Load() // the one load of this request, as in serveAPI
	pc := &proxyCall{g: g, s: s, ctx: ctx, req: req}
	pc.x = filters.Exchange{Listener: req.Conn.Listener, Start: req.Received}
	path, _, _ := strings.Cut(req.Target, "?")
	rt := s.table.MatchPath(path)
	if rt != nil {
		pc.x.Route = rt.Key
	}
	// Unrouted requests pass the listener's filters too, as unrouted API calls do, so a
	// listener's access log sees every request on it.
	pc.chain = s.chain(req.Conn.Listener, pc.x.Route)
	refuse := func(resp *codec.Response) (*proxyCall, *codec.Response) {
		pc.finish(resp.Status, resp)
		return nil, resp
	}
	if pc.chain.Filter(auth.Name) != nil {
		// Only a listener's auth gets here (dispatch refuses it on path routes). It cannot
		// verify a proxied request (see checkPathAuth), so it refuses rather than pass one
		// whose content no signature covers.
		pc.x.RejectedBy = auth.Name
		return refuse(codec.ErrorResponse(http.StatusUnauthorized, codec.ErrUnauthorized,
			"signature auth covers API requests (POST /api/OP) only; this listener cannot proxy paths"))
	}
	if resp := pc.chain.Receive(ctx, req, &pc.x); resp != nil {
		return refuse(resp)
	}
	if rt == nil {
		return refuse(codec.ErrorResponse(http.StatusNotFound, codec.ErrNoRoute, "no route for path "+quote(path)))
	}
	pc.dec = s.table.Decide(rt, req)
	pc.timeout = rt.Config().Timeout.D()
	if late := g.pastDeadline(req, s.timeout(pc.timeout, pc.dec.Cluster)); late != nil {
		return refuse(late)
	}
	pc.x.DecidedBy = pc.dec.DecidedBy
	if pc.dec.Cluster == "" {
		return refuse(noCluster())
	}
	return pc, nil
}

// finish runs the send phase and counts the request: resp is the gateway's own answer,
// or nil for a backend's (whose head is all the filters see of it).
func (pc *proxyCall) finish(status int, resp *codec.Response) {
	if resp == nil {
		pc.status = codec.Response{Status: status}
		resp = &pc.status
	}
	pc.chain.Send(pc.ctx, pc.req, resp, &pc.x)
	pc.g.m.request(pc.req.Conn.Listener, &pc.x, status, pc.g.took(pc.req, pc.end))
}

// upstreamRequest is the request as the cluster forwards it.
func (pc *proxyCall) upstreamRequest(body io.Reader, length int64) upstream.ProxyRequest {
	req := pc.req
	return upstream.ProxyRequest{
		Method: req.Method, Target: req.Target, Host: req.Header.Value("host"), Header: req.Header, HTTP10: req.Minor == 0,
		Body: body, ContentLength: length, ClientAddr: req.Conn.ClientAddr, Timeout: pc.timeout,
		Interim: pc.interim,
	}
}

// proxy forwards a plain HTTP request on the route its path matches, streaming body, and
// waits for the backend's answer head. It returns that answer, its body to stream back,
// or a gateway-made answer. A request whose body has started on its way is never resent
// to a fallback cluster. It serves the requests whose body streams (forwardAsync serves
// the rest, without a goroutine waiting). interim, when set, hears the backend's interim
// answers before proxy returns.
func (g *Gateway) proxy(ctx context.Context, req *codec.Request, body io.Reader, length int64, interim upstream.Interim) (*upstream.ProxyResponse, *codec.Response) {
	pc, answer := g.startProxy(ctx, req)
	if answer != nil {
		return nil, answer
	}
	pc.interim = interim
	var resp *upstream.ProxyResponse
	replayable := length == 0 && body == nil
	if answer := g.tryClusters(&pc.dec, &pc.x, replayable, func(cluster string) (err error) {
		r := pc.upstreamRequest(body, length)
		resp, err = pc.s.clusters[cluster].Forward(ctx, &r)
		if timedOut(err) {
			g.adm.finished(time.Now(), req.Received)
		}
		return err
	}); answer != nil {
		pc.finish(answer.Status, answer)
		return nil, answer
	}
	g.adm.finished(time.Now(), req.Received) // the backend's head: what admission follows
	pc.finish(resp.Status, nil)
	return resp, nil
}

// forwardAsync is proxy for a request whose body is whole (or absent): no goroutine waits
// for the backend (upstream.ForwardAsync). done gets the backend's answer or the
// gateway's, once: on this goroutine when no backend is called, else on the reactor
// worker that read the answer (or the deadline's timer). The cluster and the fallback
// order are followed one continuation at a time (answered), as an API call's are.
// interim, when set, hears the backend's interim answers, each before done.
func (g *Gateway) forwardAsync(req *codec.Request, body []byte, interim upstream.Interim, done func(*upstream.ProxyResponse, *codec.Response)) {
	pc, answer := g.startProxy(context.Background(), req)
	if answer != nil {
		done(nil, answer)
		return
	}
	pc.body, pc.done, pc.interim = body, done, interim
	pc.try(pc.dec.Cluster)
}

func (pc *proxyCall) try(cluster string) {
	pc.x.Cluster = cluster
	pc.t0 = pc.g.callStart(pc.req, pc.t0)
	pc.fwd = pc.upstreamRequest(nil, int64(len(pc.body)))
	pc.s.clusters[cluster].ForwardAsyncAt(&pc.fwd, pc.body, pc.t0, pc.answered)
}

// answered is the continuation of one cluster's forward: the answer goes back, or the
// next cluster of the fallback order is tried (the whole body can be sent again).
func (pc *proxyCall) answered(resp *upstream.ProxyResponse, err error) {
	defer pc.g.recoverRequest(pc.req, func(r *codec.Response) { pc.done(nil, r) })
	handed := false
	defer func() {
		// A panic before the answer was handed on (in a filter's send phase) must not
		// leave a streamed body, its backend connection and its host held for good.
		if !handed && resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
	}()
	var arrived time.Time
	if err == nil {
		arrived = resp.Arrived
	}
	pc.end = pc.g.answered(pc.req, &pc.x, pc.t0, arrived, err)
	if err == nil {
		pc.finish(resp.Status, nil)
		handed = true
		pc.done(resp, nil)
		return
	}
	next, answer := pc.g.fallback(&pc.dec, &pc.x, true, err)
	if answer != nil {
		pc.finish(answer.Status, answer)
		pc.done(nil, answer)
		return
	}
	pc.try(next)
}
