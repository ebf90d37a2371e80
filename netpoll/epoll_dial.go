//go:build linux

package netpoll

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Dial connects without blocking a thread: a non-blocking connect(2), then the poller
// reports writability. On success the connection has had its OnOpen and is served like an
// accepted one. A deadline of ctx bounds the connect; cancelling ctx abandons it.
func (e *epollEngine) Dial(ctx context.Context, addr, laddr string, h Handler) (Conn, error) {
	type result struct {
		c   Conn
		err error
	}
	got := make(chan result, 1)
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return nil, fmt.Errorf("dial %q: %w", addr, context.DeadlineExceeded)
		}
	}
	c, err := e.dial(addr, laddr, timeout, h, func(c Conn, err error) { got <- result{c, err} })
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.cancelDial(ctx.Err()) })
	r := <-got
	stop()
	return r.c, r.err
}

// DialAsync starts a connect and returns at once (see Engine): no goroutine waits on it.
// A host name is looked up on a goroutine of its own first: a resolver may take seconds,
// and the caller is often a reactor worker.
func (e *epollEngine) DialAsync(addr string, timeout time.Duration, h Handler, done func(Conn, error)) error {
	if !literalIP(addr) {
		go func() {
			if _, err := e.dial(addr, "", timeout, h, done); err != nil {
				done(nil, err)
			}
		}()
		return nil
	}
	_, err := e.dial(addr, "", timeout, h, done)
	return err
}

// literalIP reports whether addr is an IP literal with a port: nothing to look up.
func literalIP(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // dial reports the bad address at once
	}
	_, err = netip.ParseAddr(host)
	return err == nil
}

// dialWait is what a connecting socket's ctx holds until connect(2) ends: whoever ends
// the wait (the poller's event, a close, the deadline, a cancel) takes it, once.
type dialWait struct {
	addr  string
	rsa   unix.Sockaddr
	h     Handler
	done  func(Conn, error)
	timer atomic.Pointer[time.Timer]
}

// dial starts a non-blocking connect. An error it returns is final and done is not
// called; otherwise done is called once: on a worker (or, past the pool, the caller of
// Close), or on the goroutine of the timeout or the cancel.
func (e *epollEngine) dial(addr, laddr string, timeout time.Duration, h Handler, done func(Conn, error)) (*econn, error) {
	if e.closing.Load() {
		return nil, ErrEngineClosed
	}
	family, rsa, err := resolveTCP(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	var lsa unix.Sockaddr
	if laddr != "" {
		lfam, sa, err := resolveTCP(laddr)
		if err != nil {
			return nil, fmt.Errorf("dial %q: local %w", addr, err)
		}
		if lfam != family {
			return nil, fmt.Errorf("dial %q: local address %q is of another family", addr, laddr)
		}
		lsa = sa
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dial %q: socket: %w", addr, err)
	}
	if lsa != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		// With port 0, pick the port at connect(2) by the whole 4-tuple rather than at
		// bind(2), so one source address can carry more than one port range's worth of
		// connections (to different targets) in the load-test client.
		if family == unix.AF_INET {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		}
		if err := unix.Bind(fd, lsa); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("dial %q: bind %q: %w", addr, laddr, err)
		}
	}
	own := newOwner("", h, &e.cfg, 0, 0, 0)
	own.eng = e
	c := &econn{fd: int32(fd), gen: e.newGen(), id: e.nextID.Add(1), own: own, pidx: e.pickIdx()}
	c.busy = true // the dial owns it until it is registered for reads
	w := &dialWait{addr: addr, rsa: rsa, h: h, done: done}
	err = unix.Connect(fd, rsa)
	if err == unix.EINTR {
		err = unix.EINPROGRESS // connect continues in the background after EINTR
	}
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, fmt.Errorf("dial %q: connect: %w", addr, err)
	}
	// Connected already or not, the end comes as EPOLLOUT (at once for a connected
	// socket), so there is one path to it.
	c.dialing = true
	c.ctx = w // the handler cannot see c yet
	if !e.table.put(c) {
		unix.Close(fd)
		return nil, fmt.Errorf("dial %q: fd %d beyond the connection table", addr, fd)
	}
	c.mu.Lock()
	// Close sets closing before it walks the table, and c is in the table now: either
	// Close's walk finds c (and ends the wait under c.mu), or c sees closing here.
	if c.closed || e.closing.Load() {
		w := c.endDialLocked()
		c.mu.Unlock()
		if w == nil {
			return c, nil // Close took the wait: done reports it
		}
		c.abandon()
		return nil, ErrEngineClosed
	}
	err = c.poller().add(fd, c.gen, unix.EPOLLOUT|unix.EPOLLONESHOT)
	c.registered = err == nil
	if err != nil {
		c.endDialLocked()
		c.mu.Unlock()
		c.abandon()
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	c.mu.Unlock()
	if timeout > 0 {
		// Set after the event may have come: a timer that fires after the end finds
		// nothing to end.
		w.timer.Store(time.AfterFunc(timeout, func() { c.cancelDial(context.DeadlineExceeded) }))
	}
	return c, nil
}

// connectEndedLocked is endDialLocked for the poller's event and for a close: it leaves
// the wait in ctx and marks c for its next serve, which finishes the dial on a worker
// (the caller dispatches c). A full pool queues c in the ready queue like any other
// ready connection, so a flood of connects costs no goroutine each.
func (c *econn) connectEndedLocked() bool {
	if !c.dialing {
		return false
	}
	c.dialing, c.connecting = false, true
	return true
}

// endDialLocked takes the connect's wait, if nobody has yet.
func (c *econn) endDialLocked() *dialWait {
	if !c.dialing {
		return nil
	}
	c.dialing = false
	w := c.ctx.(*dialWait)
	c.ctx = nil
	return w
}

// cancelDial ends a connect still in progress with cause (deadline, ctx cancelled).
func (c *econn) cancelDial(cause error) {
	c.mu.Lock()
	w := c.endDialLocked()
	c.mu.Unlock()
	if w != nil {
		c.connected(w, cause)
	}
}

// connected finishes a connect whose wait was taken: with cause (or the socket's own
// error, or the engine's close) it abandons the socket and reports the error; otherwise
// it opens the connection, registers it for reads and hands it to done.
func (c *econn) connected(w *dialWait, cause error) {
	if t := w.timer.Load(); t != nil {
		t.Stop()
	}
	e := c.eng()
	fd := int(c.fd)
	c.mu.Lock()
	closed := c.closed
	c.ctx = nil
	c.mu.Unlock()
	if cause == nil && closed { // the engine closed meanwhile
		cause = ErrEngineClosed
	}
	if cause == nil {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && v != 0 {
			err = unix.Errno(v)
		}
		if err != nil {
			cause = fmt.Errorf("connect: %w", err)
		}
	}
	if cause != nil {
		c.abandon()
		w.done(nil, fmt.Errorf("dial %q: %w", w.addr, cause))
		return
	}
	tuneConn(fd, e.cfg.KeepAlive, e.cfg.RxTimestamps)
	if sa, err := unix.Getsockname(fd); err == nil {
		c.setLocal(sa)
	}
	c.rip, c.rport = rawAddr(w.rsa) // the peer connected to: no getpeername(2) needed
	c.lastActive.Store(e.tick.Load())
	c.idleTicks.Store(ticksFor(c.own.idle, e.cfg.TimerTick))
	c.mu.Lock()
	c.opened = true
	c.mu.Unlock()
	e.ctr.open.Add(1)
	e.ctr.dialed.Add(1)
	if !callSafely("OnOpen", c.id, func() { w.h.OnOpen(c) }) {
		c.CloseWithReason(ReasonHandler)
	}
	c.register()
	w.done(c, nil)
}

// abandon closes a connection that never opened: no OnClose, no counters.
func (c *econn) abandon() {
	c.mu.Lock()
	c.dialing, c.ctx = false, nil
	c.notified = true
	c.closeLocked(ReasonLocal)
	c.busy = false
	c.freeLocked()
	c.mu.Unlock()
}
