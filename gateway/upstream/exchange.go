package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"
)

// acquire checks the in-flight cap, picks a host and counts the request as in flight on
// both. Every successful acquire is paired with one release.
func (c *Cluster) acquire() (*host, *Error) {
	if n := c.inFlight.Add(1); c.maxInFlight > 0 && n > c.maxInFlight {
		c.inFlight.Add(-1)
		c.m.overloaded.Inc()
		return nil, newError(Overloaded, c.name, "", false, nil)
	}
	h := c.pick()
	if h == nil {
		c.inFlight.Add(-1)
		c.m.noHealthy.Inc()
		return nil, newError(NoHealthyHost, c.name, "", false, nil)
	}
	c.m.inFlight.Inc()
	h.inFlight.Add(1)
	h.requests.Add(1)
	return h, nil
}

// release ends a request acquire began. kind is 0 when the backend answered (status is
// its status code), else the failure's kind.
func (c *Cluster) release(h *host, start time.Time, kind Kind, status int) {
	h.inFlight.Add(-1)
	c.inFlight.Add(-1)
	c.m.inFlight.Dec()
	c.m.duration.UpdateDuration(start)
	h.m.count(kind)
	c.observe(h, kind, status)
	if c.isClosed() {
		// A replaced cluster. Transport.CloseIdleConnections (from Close) already makes
		// connections that go idle later close, but any request started after Close
		// undoes that; closing again here keeps a closed cluster from holding sockets
		// for IdleConnTimeout either way.
		c.transport.CloseIdleConnections()
	}
}

// sendTrace records whether the transport got a connection for the request: from then on
// bytes of the request may reach the backend, so the request counts as sent. This is
// deliberately conservative (a failure between getting the connection and flushing the
// first byte also counts as sent): retrying a payment twice is worse than not retrying.
type sendTrace struct {
	gotConn atomic.Bool
	reused  atomic.Bool // the connection came from the idle pool
	trace   httptrace.ClientTrace
}

func (t *sendTrace) with(ctx context.Context) context.Context {
	t.trace.GotConn = func(i httptrace.GotConnInfo) {
		t.gotConn.Store(true)
		t.reused.Store(i.Reused)
	}
	return httptrace.WithClientTrace(ctx, &t.trace)
}

// roundTrip sends hreq, and once more on another connection when the first attempt met
// a kept-alive connection that the backend had already closed as idle. net/http retries
// that itself only for idempotent methods, but the case is safe for any request: the
// backend sent its FIN while the connection was idle, before it could have read ours
// (golang.org/issue/19943), so no backend processed it. A body is resent only when it
// can be rewound (GetBody); a streamed one cannot, and the error stands.
func (c *Cluster) roundTrip(hreq *http.Request, st *sendTrace) (*http.Response, error) {
	resp, err := c.transport.RoundTrip(hreq)
	if err == nil || !st.reused.Load() || !isIdleClosed(err) || hreq.Context().Err() != nil {
		return resp, err
	}
	retry := hreq.Clone(hreq.Context())
	if hreq.ContentLength != 0 {
		if hreq.GetBody == nil {
			return nil, err
		}
		body, gerr := hreq.GetBody()
		if gerr != nil {
			return nil, err
		}
		retry.Body = body
	}
	st.gotConn.Store(false)
	st.reused.Store(false)
	c.m.idleRetries.Inc()
	return c.transport.RoundTrip(retry)
}

// idleClosedMsg is net/http's errServerClosedIdle, which is unexported; RoundTrip
// returns it undecorated.
const idleClosedMsg = "http: server closed idle connection"

func isIdleClosed(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == idleClosedMsg {
			return true
		}
	}
	return false
}

// classify turns a transport or body-read error into a Kind. parent is the caller's
// context; timedOut says our own request deadline fired.
func classify(parent context.Context, err error, sent, timedOut bool) Kind {
	if perr := parent.Err(); perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) {
			return Timeout
		}
		return Canceled
	}
	if timedOut {
		return Timeout
	}
	if !sent {
		// Refused, unreachable, DNS, connect timeout: no connection, nothing written.
		return ConnectFailed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Failed
}
