package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/gateway/route"
	"github.com/mgw-project/mgw/gateway/upstream"
)

// serveAPI runs one API request down the layers and back: the filters' receive phase,
// the router, the upstream call with its fallback order, the send phase. reply gets the
// response exactly once: on this goroutine when no backend is called, else on the
// reactor worker that read the backend's answer (or the timer's, at the deadline). No
// goroutine waits for the backend meanwhile (upstream.CallAsync).
func (g *Gateway) serveAPI(req *codec.Request, reply func(*codec.Response)) {
	c := &apiCall{g: g, req: req, reply: reply}
	c.serve()
}

// serve is serveAPI for the call c was made for.
func (c *apiCall) serve() {
	req := c.req
	s := c.g.snap.Load() // the one load of this request: table, filters and clusters agree
	c.s = s
	c.x = filters.Exchange{Listener: req.Conn.Listener, Start: req.Received}
	rt := s.table.Match(req.Operation)
	if rt != nil {
		c.x.Route = rt.Key
	}
	// Unrouted calls pass the listener's filters too ("" joins no route's).
	c.chain = s.chain(req.Conn.Listener, c.x.Route)
	switch resp := c.chain.Receive(context.Background(), req, &c.x); {
	case resp != nil:
		c.out(resp)
	case rt == nil:
		c.out(noRoute(req))
	default:
		c.callUpstream(rt)
	}
}

func noRoute(req *codec.Request) *codec.Response {
	return codec.ErrorResponse(http.StatusNotFound, codec.ErrNoRoute, "no route for operation type "+quote(req.Operation))
}

// apiCall is one API request from its receive phase to its answer: what the answer's
// continuation needs when it runs on the reactor worker that read the backend's answer.
// It is the call's upstream.Done, and, for a call served inline (callAPI), its reply:
// no func value is made per call for either.
type apiCall struct {
	g       *Gateway
	s       *snapshot
	req     *codec.Request
	x       filters.Exchange
	chain   *filters.Chain
	dec     route.Decision
	timeout time.Duration
	t0      time.Time             // the current cluster's call began
	end     time.Time             // its answer came; zero until a backend answered
	reply   func(*codec.Response) // nil: once ends the call
	once    replyOnce
	outDone atomic.Bool
}

// respond hands the answer to whoever replies for the call.
func (c *apiCall) respond(resp *codec.Response) {
	if c.reply != nil {
		c.reply(resp)
		return
	}
	c.once.reply(resp)
}

// callUpstream sends the request to the cluster the router decides, and down the route's
// fallback order while a cluster cannot serve (answered).
func (c *apiCall) callUpstream(rt *route.Route) {
	rc := rt.Config()
	if rc.MaxBodyBytes > 0 && len(c.req.Body) > rc.MaxBodyBytes {
		c.out(codec.ErrorResponse(http.StatusRequestEntityTooLarge, codec.ErrTooLarge,
			"body of "+itoa(len(c.req.Body))+" bytes is over the route's limit of "+itoa(rc.MaxBodyBytes)))
		return
	}
	c.dec = c.s.table.Decide(rt, c.req)
	if late := c.g.pastDeadline(c.req, c.s.timeout(rc.Timeout.D(), c.dec.Cluster)); late != nil {
		c.out(late)
		return
	}
	c.timeout = rc.Timeout.D()
	c.x.DecidedBy = c.dec.DecidedBy
	if c.dec.Cluster == "" {
		c.out(noCluster())
		return
	}
	c.try(c.dec.Cluster)
}

func (c *apiCall) try(cluster string) {
	c.x.Cluster = cluster
	c.t0 = c.g.callStart(c.req, c.t0)
	c.s.clusters[cluster].CallAsyncAt(c.req, c.t0, c.timeout, c)
}

// Answered is the continuation of one cluster's call (upstream.Done): the answer goes
// out, or the next cluster of the fallback order is tried.
func (c *apiCall) Answered(resp *codec.Response, err error) {
	defer c.g.recoverRequest(c.req, c.respond)
	var arrived time.Time
	if err == nil {
		arrived = resp.Arrived
	}
	c.end = c.g.answered(c.req, &c.x, c.t0, arrived, err)
	if err == nil {
		c.out(resp)
		return
	}
	next, answer := c.g.fallback(&c.dec, &c.x, true, err)
	if answer != nil {
		c.out(answer)
		return
	}
	c.try(next)
}

// out runs the send phase, counts the request and replies.
func (c *apiCall) out(resp *codec.Response) {
	if c.outDone.Swap(true) {
		return // once: after a panic in the first (answered 500 by recoverRequest), nothing
	}
	c.chain.Send(context.Background(), c.req, resp, &c.x)
	c.g.m.request(c.req.Conn.Listener, &c.x, resp.Status, c.g.took(c.req, c.end))
	c.respond(resp)
}

// timedOut says err is a backend that did not answer in time.
func timedOut(err error) bool {
	ue, ok := upstream.AsError(err)
	return ok && ue.Kind == upstream.Timeout
}

// shutdownAnswer is the answer to a request the drain's deadline cut (Drain, fallback).
func shutdownAnswer() *codec.Response {
	return codec.ErrorResponse(http.StatusServiceUnavailable, codec.ErrUnavailable,
		"the gateway is shutting down: its drain deadline passed before the backend answered")
}

func noCluster() *codec.Response {
	return codec.ErrorResponse(http.StatusServiceUnavailable, codec.ErrUnavailable, "no cluster may serve this request")
}

// tryClusters calls try with the decided cluster, then down the route's fallback order
// while a cluster cannot serve (fallback), and returns nil once one succeeds or else the
// answer for the client. It is the proxy's loop; an API call takes the same steps one
// continuation at a time (apiCall.answered).
func (g *Gateway) tryClusters(dec *route.Decision, x *filters.Exchange, replayable bool, try func(cluster string) error) *codec.Response {
	x.DecidedBy = dec.DecidedBy
	cluster := dec.Cluster
	if cluster == "" {
		return noCluster()
	}
	for {
		x.Cluster = cluster
		t0 := time.Now()
		err := try(cluster)
		x.UpstreamLatency += time.Since(t0)
		if err == nil {
			return nil
		}
		next, answer := g.fallback(dec, x, replayable, err)
		if answer != nil {
			return answer
		}
		cluster = next
	}
}

// fallback decides what follows a cluster's failure err: the next cluster of the route's
// fallback order, or the answer for the client. A request that may have reached a
// backend moves on only when the route allows retries (Decision.Next enforces it) and the
// request can be sent again at all (replayable: a streamed body cannot).
func (g *Gateway) fallback(dec *route.Decision, x *filters.Exchange, replayable bool, err error) (string, *codec.Response) {
	if g.cutting.Load() {
		// The drain's deadline closed the backend connections: the gateway stops, the
		// backend did not fail.
		return "", shutdownAnswer()
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
		return "", ue.Response()
	}
	g.log.Debug("fallback", "api", x.Route, "from", x.Cluster, "to", next, "err", err)
	x.DecidedBy = "fallback"
	return next, nil
}
