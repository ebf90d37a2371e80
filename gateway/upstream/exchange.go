package upstream

import (
	"context"
	"errors"
	"net"
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
	c.releaseAt(h, start, time.Now(), kind, status)
}

// releaseAt is release when the clock was read already (now).
func (c *Cluster) releaseAt(h *host, start, now time.Time, kind Kind, status int) {
	h.inFlight.Add(-1)
	c.inFlight.Add(-1)
	c.m.inFlight.Dec()
	c.m.duration.Update(now.Sub(start).Seconds())
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
