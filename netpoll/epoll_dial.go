//go:build linux

package netpoll

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// Dial connects without blocking a thread: a non-blocking connect(2), then the poller
// reports writability. On success the connection gets OnOpen on this goroutine and is
// served like an accepted one.
func (e *epollEngine) Dial(ctx context.Context, addr, laddr string, h Handler) (Conn, error) {
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
	c.busy = true
	err = unix.Connect(fd, rsa)
	for err == unix.EINTR {
		err = unix.EINPROGRESS // connect continues in the background after EINTR
	}
	switch err {
	case nil:
	case unix.EINPROGRESS:
		if err := c.awaitConnect(ctx); err != nil {
			return nil, fmt.Errorf("dial %q: %w", addr, err)
		}
	default:
		unix.Close(fd)
		return nil, fmt.Errorf("dial %q: connect: %w", addr, err)
	}

	tuneConn(fd, e.cfg.KeepAlive)
	if sa, err := unix.Getsockname(fd); err == nil {
		c.setLocal(sa)
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		c.rip, c.rport = rawAddr(sa)
	} else {
		c.rip, c.rport = rawAddr(rsa)
	}
	c.lastActive.Store(e.tick.Load())
	c.idleTicks.Store(ticksFor(c.own.idle, e.cfg.TimerTick))
	if !c.registered && !e.table.put(c) {
		unix.Close(fd)
		return nil, fmt.Errorf("dial %q: fd %d beyond the connection table", addr, fd)
	}
	c.mu.Lock()
	c.opened = true
	c.mu.Unlock()
	e.ctr.open.Add(1)
	e.ctr.dialed.Add(1)
	if !callSafely("OnOpen", c.id, func() { h.OnOpen(c) }) {
		c.CloseWithReason(ReasonHandler)
	}
	c.register()
	return c, nil
}

// awaitConnect registers the connecting socket for EPOLLOUT and waits for the poller (or
// ctx). On failure the socket is closed and no callbacks run.
func (c *econn) awaitConnect(ctx context.Context) error {
	e := c.eng()
	done := make(chan struct{})
	c.dialing = true
	c.ctx = done // the handler cannot see c yet; the poller closes done
	if !e.table.put(c) {
		unix.Close(int(c.fd))
		return fmt.Errorf("fd %d beyond the connection table", c.fd)
	}
	c.mu.Lock()
	err := c.poller().add(int(c.fd), c.gen, unix.EPOLLOUT|unix.EPOLLONESHOT)
	c.registered = err == nil
	c.mu.Unlock()
	if err != nil {
		c.abandon()
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		c.abandon()
		return ctx.Err()
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed { // the engine closed meanwhile
		c.abandon()
		return ErrEngineClosed
	}
	v, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && v != 0 {
		err = unix.Errno(v)
	}
	if err != nil {
		c.abandon()
		return fmt.Errorf("connect: %w", err)
	}
	c.mu.Lock()
	c.dialing, c.ctx = false, nil
	c.mu.Unlock()
	return nil
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
