package filters

import (
	"context"
	"time"

	"github.com/mgw-project/mgw/codec"
)

// Filter is one step of a chain. One Filter value serves every request of the route (or
// listener) it was built for, concurrently, from many pool workers: its methods must be safe
// for concurrent use. They run on the worker that handles the request and must not block
// on I/O except through ctx (which carries the request's deadline).
type Filter interface {
	// Name is the registered name ("auth", "ratelimit", ...), used in metrics and logs.
	Name() string
	// Receive inspects the request on the way in. A non-nil response answers the request
	// early: later filters' Receive and the upstream are not called. Receive may modify
	// req (add headers) but must not retain it after the request completes.
	Receive(ctx context.Context, req *codec.Request, x *Exchange) *codec.Response
	// Send sees the final response on the way out, whoever produced it (the upstream, a
	// filter that answered early, or the gateway). It may modify resp. Send is called for
	// every filter of the chain, also those whose Receive did not run because an earlier
	// filter answered: x.RejectedBy tells them.
	Send(ctx context.Context, req *codec.Request, resp *codec.Response, x *Exchange)
}

// Handler stands for what runs after the receive phase: routing and the upstream call. It
// must return a non-nil response.
type Handler func(ctx context.Context, req *codec.Request, x *Exchange) *codec.Response

// Exchange carries per-request state between the gateway and the filters. The gateway
// makes one per request (it may pool them: Reset clears one) and fills the fields marked
// "gateway"; filters read them, and the chain sets RejectedBy. An Exchange belongs to one
// request and is used by one goroutine at a time.
type Exchange struct {
	Listener string // gateway: the listener's name
	Route    string // gateway: the route's label (its API pattern or path prefix)
	// Start is when the request's bytes were seen ready by the reactor (gateway:
	// req.Received), before any wait for a worker. It must be a fine-grained reading
	// (not a coarse cached clock): filters that judge time use it as the request's arrival
	// instead of reading the clock again (see Arrival).
	Start time.Time

	Cluster   string // gateway, after routing: the cluster that served the request
	DecidedBy string // gateway, after routing: why that cluster (split, switch, force, fallback, ...)

	UpstreamLatency time.Duration // gateway: time spent in the upstream call; 0 when not called
	BytesIn         int64         // gateway: request bytes on the wire (0: the access log uses len(Body))
	BytesOut        int64         // gateway: response bytes on the wire (0: the access log uses len(Body))

	// NonceRecorded is set by auth once it recorded this request's nonce, so a second
	// auth filter on the chain (the listener's, then the route's) does not take the same
	// request for its own replay.
	NonceRecorded bool

	// RejectedBy names the filter whose Receive answered early; "" when none did. Set by
	// the chain.
	RejectedBy string
}

// Reset clears x for reuse from a pool.
func (x *Exchange) Reset() { *x = Exchange{} }

// Arrival returns when the request arrived, for filters that judge time (rate limits,
// timestamp windows): x.Start, else req.Received, else clock(). Reading the clock once per
// request in the gateway instead of once per filter matters: time.Now costs from 20 ns to
// several hundred on virtual machines. x may be nil.
func Arrival(req *codec.Request, x *Exchange, clock func() time.Time) time.Time {
	if x != nil && !x.Start.IsZero() {
		return x.Start
	}
	if !req.Received.IsZero() {
		return req.Received
	}
	return clock()
}
