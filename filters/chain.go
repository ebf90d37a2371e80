package filters

import (
	"context"

	"github.com/mgw-project/mgw/codec"
)

// Chain is an ordered, immutable list of filters. A Chain is safe for concurrent use; the
// nil *Chain and a Chain with no filters are valid and cost one length check per phase.
type Chain struct {
	filters []Filter
}

// NewChain returns a chain running fs in order. The slice is copied.
func NewChain(fs ...Filter) *Chain {
	return &Chain{filters: append([]Filter(nil), fs...)}
}

// Join returns a chain running the filters of each chain in turn (a listener's chain, then
// the route's). Nil chains are skipped. Build it once when the routing table loads, not per
// request.
func Join(chains ...*Chain) *Chain {
	var fs []Filter
	for _, c := range chains {
		if c != nil {
			fs = append(fs, c.filters...)
		}
	}
	return &Chain{filters: fs}
}

// Len returns the number of filters.
func (c *Chain) Len() int {
	if c == nil {
		return 0
	}
	return len(c.filters)
}

// Names returns the filters' names in order.
func (c *Chain) Names() []string {
	out := make([]string, 0, c.Len())
	for i := 0; i < c.Len(); i++ {
		out = append(out, c.filters[i].Name())
	}
	return out
}

// Filter returns the first filter named name, or nil.
func (c *Chain) Filter(name string) Filter {
	for i := 0; i < c.Len(); i++ {
		if c.filters[i].Name() == name {
			return c.filters[i]
		}
	}
	return nil
}

// Receive runs the receive phase in order and stops at the first filter that answers; it
// records that filter's name in x.RejectedBy and returns its response. nil means every
// filter let the request through. x should be non-nil (filters read it); a nil x is
// tolerated for callers that have no per-request state.
func (c *Chain) Receive(ctx context.Context, req *codec.Request, x *Exchange) *codec.Response {
	if c == nil {
		return nil
	}
	for _, f := range c.filters {
		if resp := f.Receive(ctx, req, x); resp != nil {
			if x != nil {
				x.RejectedBy = f.Name()
			}
			return resp
		}
	}
	return nil
}

// Send runs the send phase of every filter, in reverse order (the first filter sees the
// response last, after the others' changes), whether or not its Receive ran.
func (c *Chain) Send(ctx context.Context, req *codec.Request, resp *codec.Response, x *Exchange) {
	if c == nil {
		return
	}
	for i := len(c.filters) - 1; i >= 0; i-- {
		c.filters[i].Send(ctx, req, resp, x)
	}
}

// Handle runs the whole exchange: the receive phase, next when no filter answered, then
// the send phase, and returns the response to write. A nil response from next becomes a
// 502, so the send phase always sees a response.
func (c *Chain) Handle(ctx context.Context, req *codec.Request, x *Exchange, next Handler) *codec.Response {
	resp := c.Receive(ctx, req, x)
	if resp == nil {
		resp = next(ctx, req, x)
		if resp == nil {
			resp = codec.ErrorResponse(502, codec.ErrUpstream, "no response")
		}
	}
	c.Send(ctx, req, resp, x)
	return resp
}
