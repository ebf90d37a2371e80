package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"
)

// The package's own HTTP/1.1 client, for Call and Forward. Why not net/http's Transport:
// every exchange there crosses three goroutines (the caller, the connection's writeLoop
// and readLoop) through channels, and an idle connection keeps a goroutine blocked in
// read. Profiled under wrk, that hand-off was the largest single cost of a request. Here
// the calling goroutine writes the request and reads the answer itself (a streamed
// request body of unknown or large size gets one goroutine while it lasts), and an idle
// connection is only a socket and its buffers. Health probes keep a net/http Transport
// of their own, so a host has two pools; probes hold at most one connection.

// h1Conn is one kept-alive connection, used by one call at a time.
type h1Conn struct {
	nc     net.Conn
	rc     syscall.RawConn // for the liveness peek
	br     *bufio.Reader
	idleAt time.Time
	peek   func(fd uintptr) bool // c.peekFD
	peekOK bool
}

// h1Pool is one host's connections for Call.
type h1Pool struct {
	addr        string
	dialer      net.Dialer // Timeout: the connect timeout
	maxConns    int
	maxIdle     int
	idleTimeout time.Duration
	stale       *metrics.Counter // idle connections found closed by the backend

	mu     sync.Mutex
	open   int       // connections counted against maxConns: in use, idle or dialing
	idle   []*h1Conn // most recently used last
	closed bool
	sweep  *time.Timer
	// waitq holds callers waiting for a connection at the cap, oldest first. A connection
	// put back goes to the oldest as it is (no close, no dial, no TIME_WAIT); a slot freed
	// by a close goes as nil, to dial with.
	waitq []chan *h1Conn
}

const connReadBuffer = 16 << 10

func newH1Pool(addr string, connectTimeout time.Duration, maxConns, maxIdle int, idleTimeout time.Duration) *h1Pool {
	return &h1Pool{
		addr:        addr,
		dialer:      net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second},
		maxConns:    maxConns,
		maxIdle:     maxIdle,
		idleTimeout: idleTimeout,
	}
}

// errPoolWait is the cause when the deadline passes while all connection slots are busy.
var errPoolWait = errors.New("no connection slot free before the deadline (max_conns_per_host)")

// get returns a connection with its deadline set: a live idle one, else a new one, else
// one handed over by a caller that is done with it. err from dialing or waiting means
// nothing was sent.
func (p *h1Pool) get(ctx context.Context, deadline time.Time) (c *h1Conn, err error) {
	for {
		p.mu.Lock()
		c = p.popIdleLocked()
		if c == nil {
			break
		}
		p.mu.Unlock()
		if c.nc.SetDeadline(deadline) == nil && c.alive() {
			return c, nil
		}
		if p.stale != nil {
			p.stale.Inc()
		}
		p.discard(c)
	}
	if p.open < p.maxConns {
		p.open++
		p.mu.Unlock()
	} else {
		ch := make(chan *h1Conn, 1)
		p.waitq = append(p.waitq, ch)
		p.mu.Unlock()
		c, err = p.wait(ctx, deadline, ch)
		if err != nil {
			return nil, err
		}
		if c != nil {
			// Handed over straight from a finished exchange: nothing to peek at.
			if err := c.nc.SetDeadline(deadline); err != nil {
				p.discard(c)
				return nil, err
			}
			return c, nil
		}
		// nil: a slot to dial with.
	}
	d := p.dialer
	d.Deadline = deadline
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		p.release()
		return nil, err
	}
	c = &h1Conn{nc: nc, br: bufio.NewReaderSize(nc, connReadBuffer)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
		c.peek = c.peekFD
	}
	if err := nc.SetDeadline(deadline); err != nil {
		p.discard(c)
		return nil, err
	}
	return c, nil
}

// wait waits in the queue for a connection or a slot. When it gives up, what was handed
// to it meanwhile is passed on.
func (p *h1Pool) wait(ctx context.Context, deadline time.Time, ch chan *h1Conn) (*h1Conn, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var err error
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errPoolWait
	}
	p.mu.Lock()
	for i, w := range p.waitq {
		if w == ch {
			p.waitq = append(p.waitq[:i], p.waitq[i+1:]...)
			p.mu.Unlock()
			return nil, err
		}
	}
	p.mu.Unlock()
	// Already handed something: pass it on to the next in line.
	if c := <-ch; c != nil {
		p.put(c, true)
	} else {
		p.release()
	}
	return nil, err
}

// release frees one connection's slot: to the oldest waiter, to dial with, or to the cap.
func (p *h1Pool) release() {
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *h1Pool) releaseLocked() {
	if len(p.waitq) > 0 {
		ch := p.waitq[0]
		p.waitq = p.waitq[1:]
		ch <- nil // buffered: never blocks
		return
	}
	p.open--
}

// popIdleLocked takes the most recently used idle connection, or nil. When that one has
// been idle past the idle timeout, all have: they are closed.
func (p *h1Pool) popIdleLocked() *h1Conn {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	if time.Since(c.idleAt) >= p.idleTimeout {
		for i, o := range p.idle {
			o.nc.Close()
			p.releaseLocked()
			p.idle[i] = nil
		}
		p.idle = p.idle[:0]
		c.nc.Close()
		p.releaseLocked()
		return nil
	}
	return c
}

// alive peeks at an idle connection without blocking: a backend that closed it while
// idle has sent FIN (read returns 0), and one that sent bytes unasked broke the protocol.
// Either way the connection is not used, and nothing was written to it. (net/http learns
// the same from its per-connection read goroutine.) A close that races with the request
// is caught by reading the answer, and counts as sent.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.rc == nil {
		return true
	}
	c.peekOK = false
	return c.rc.Read(c.peek) == nil && c.peekOK
}

// peekFD is the RawConn callback of alive, made once per connection so a check does not
// allocate a closure.
func (c *h1Conn) peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	c.peekOK = n < 0 && (err == unix.EAGAIN || err == unix.EWOULDBLOCK)
	return true // never wait: the answer is in either way
}

// put returns a connection after a complete exchange. reuse is false when the answer
// said close or its framing made reuse unsafe. A caller waiting for a connection gets it
// as it is.
func (p *h1Pool) put(c *h1Conn, reuse bool) {
	if !reuse {
		p.discard(c)
		return
	}
	p.mu.Lock()
	if len(p.waitq) > 0 && !p.closed {
		ch := p.waitq[0]
		p.waitq = p.waitq[1:]
		p.mu.Unlock()
		ch <- c // buffered: never blocks
		return
	}
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		p.discard(c)
		return
	}
	c.idleAt = time.Now()
	p.idle = append(p.idle, c)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleTimeout, p.sweepIdle)
	}
	p.mu.Unlock()
}

// discard closes a connection and frees its slot.
func (p *h1Pool) discard(c *h1Conn) {
	c.nc.Close()
	p.release()
}

// sweepIdle closes connections idle for longer than the idle timeout, so a host that
// gets no more calls does not keep its sockets forever.
func (p *h1Pool) sweepIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	keep := p.idle[:0]
	for _, c := range p.idle {
		if now.Sub(c.idleAt) >= p.idleTimeout {
			c.nc.Close()
			p.releaseLocked()
			continue
		}
		keep = append(keep, c)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(p.idle) == 0 || p.closed {
		p.sweep = nil
		return
	}
	p.sweep.Reset(p.idle[0].idleAt.Add(p.idleTimeout).Sub(now))
}

// close closes the idle connections; connections in use close when they are put back.
func (p *h1Pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, c := range p.idle {
		c.nc.Close()
		p.releaseLocked()
		p.idle[i] = nil
	}
	p.idle = p.idle[:0]
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
}

// idleCount is for tests.
func (p *h1Pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
