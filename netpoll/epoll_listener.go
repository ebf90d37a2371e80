//go:build linux

package netpoll

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// elistener is a listening socket. Its poller only signals readiness; one accept goroutine
// per listener runs accept4 until EAGAIN, so OnOpen runs off the poller, and the listener
// fd is closed by that goroutine alone (no accept4 on a reused fd).
type elistener struct {
	eng    *epollEngine
	own    *owner
	fd     int
	p      *poller
	addr   net.Addr
	max    int
	open   atomic.Int64
	paused atomic.Bool
	// held: PauseAccept asked the accept loop to stop; amu is held by a batch in progress,
	// so PauseAccept can wait it out.
	held atomic.Bool
	amu  sync.Mutex
	// bucket caps the accept rate (accept goroutine only).
	bucket acceptBucket

	wakeCh   chan struct{}
	stopCh   chan struct{}
	exited   chan struct{}
	stopOnce sync.Once
}

func (e *epollEngine) Listen(name, addr string, h Handler, opts ListenerOptions) (net.Addr, error) {
	if e.closing.Load() {
		return nil, ErrEngineClosed
	}
	var fd int
	var bound net.Addr
	var err error
	if opts.InheritFD > 0 {
		fd, bound, err = inheritSocket(opts.InheritFD)
	} else {
		fd, bound, err = listenSocket(addr, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", name, err)
	}
	l := &elistener{
		eng: e, fd: fd, p: e.pickPoller(), addr: bound, max: opts.MaxConns, bucket: newAcceptBucket(opts.AcceptRate),
		wakeCh: make(chan struct{}, 1), stopCh: make(chan struct{}), exited: make(chan struct{}),
	}
	l.own = newOwner(name, h, &e.cfg, opts.IdleTimeout, opts.PartialTimeout, opts.WriteStallTimeout)
	l.own.eng = e
	l.own.l = l
	e.lmu.Lock()
	e.listeners[fd] = l
	e.lmu.Unlock()
	if err := l.p.add(fd, 0, unix.EPOLLIN|unix.EPOLLONESHOT); err != nil {
		e.lmu.Lock()
		delete(e.listeners, fd)
		e.lmu.Unlock()
		unix.Close(fd)
		return nil, fmt.Errorf("listener %q: %w", name, err)
	}
	go l.acceptLoop()
	return bound, nil
}

// listenSocket makes a non-blocking, close-on-exec listening socket with SO_REUSEADDR
// (and SO_REUSEPORT when asked) and returns it with the address actually bound.
func listenSocket(addr string, opts ListenerOptions) (int, net.Addr, error) {
	family, sa, err := resolveTCP(addr)
	if err != nil {
		return -1, nil, err
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, net.Addr, error) {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("%s %q: %w", what, addr, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if opts.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if family == unix.AF_INET6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	backlog := opts.Backlog
	if backlog <= 0 {
		backlog = unix.SOMAXCONN
		if b, err := somaxconn(); err == nil {
			backlog = b
		}
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, net.TCPAddrFromAddrPort(addrPort(got)), nil
}

// inheritSocket takes a duplicate of a listening socket another process passed on, so the
// socket keeps its backlog and never refuses a connection across the upgrade.
func inheritSocket(fd int) (int, net.Addr, error) {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return -1, nil, fmt.Errorf("inherited fd %d is not a listening socket (%v)", fd, err)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("inherited fd %d: dup: %w", fd, err)
	}
	// O_NONBLOCK belongs to the socket's open file, which the other process shares: it
	// must stay set for both (accept4 until EAGAIN).
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return -1, nil, fmt.Errorf("inherited fd %d: set non-blocking: %w", fd, err)
	}
	got, err := unix.Getsockname(nfd)
	if err != nil {
		unix.Close(nfd)
		return -1, nil, fmt.Errorf("inherited fd %d: getsockname: %w", fd, err)
	}
	return nfd, net.TCPAddrFromAddrPort(addrPort(got)), nil
}

func (l *elistener) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

// stop closes the listener and waits for its accept goroutine to exit.
func (l *elistener) stop() {
	l.stopOnce.Do(func() {
		close(l.stopCh)
		l.wake()
	})
	<-l.exited
}

func (l *elistener) stopped() bool {
	select {
	case <-l.stopCh:
		return true
	default:
		return false
	}
}

func (l *elistener) acceptLoop() {
	e := l.eng
	defer func() {
		e.lmu.Lock()
		delete(e.listeners, l.fd)
		e.lmu.Unlock()
		_ = unix.EpollCtl(l.p.epfd, unix.EPOLL_CTL_DEL, l.fd, nil)
		unix.Close(l.fd)
		close(l.exited)
	}()
	for {
		select {
		case <-l.stopCh:
			return
		case <-l.wakeCh:
		}
		l.amu.Lock()
		l.acceptBatch()
		l.amu.Unlock()
	}
}

// atCap reports whether this listener or the engine is at its connection cap.
func (l *elistener) atCap() bool {
	if l.max > 0 && l.open.Load() >= int64(l.max) {
		return true
	}
	return l.eng.ctr.open.Load() >= int64(l.eng.cfg.MaxConns)
}

// acceptBatch accepts until EAGAIN, then re-arms the listener. At a cap it returns
// without re-arming: the kernel backlog holds new connections, and a close wakes us.
func (l *elistener) acceptBatch() {
	e := l.eng
	starved := false // counts one pause per run out of descriptors, not one per retry
	for !l.stopped() {
		if l.held.Load() {
			return // PauseAccept: not re-armed; ResumeAccept wakes us
		}
		if l.atCap() {
			if !l.paused.Swap(true) {
				e.ctr.acceptPaused.Add(1)
			}
			if !l.atCap() { // a close raced with the check; its wake may be lost
				l.paused.Store(false)
				continue
			}
			return
		}
		l.paused.Store(false)
		if ok, wait := l.bucket.take(); !ok {
			// Over the rate: not re-armed, the backlog holds the rest until the timer.
			e.ctr.throttled.Add(1)
			time.AfterFunc(wait, l.wake)
			return
		}
		nfd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			e.openConn(nfd, sa, l.own)
			continue
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
			_ = l.p.mod(l.fd, 0, unix.EPOLLIN|unix.EPOLLONESHOT)
			return
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Out of descriptors or memory: back off briefly rather than spin; the
			// connection stays in the backlog.
			if !starved {
				starved = true
				e.ctr.acceptPaused.Add(1)
			}
			select {
			case <-l.stopCh:
			case <-time.After(10 * time.Millisecond):
			}
			continue
		default:
			return
		}
	}
}

// openConn makes a connection of an accepted fd and hands it to OnOpen, then to epoll.
func (e *epollEngine) openConn(fd int, peer unix.Sockaddr, own *owner) {
	tuneConn(fd, e.cfg.KeepAlive, e.cfg.RxTimestamps)
	c := &econn{fd: int32(fd), gen: e.newGen(), id: e.nextID.Add(1), own: own, pidx: e.pickIdx()}
	c.busy, c.opened = true, true
	c.rip, c.rport = rawAddr(peer)
	if ls, err := unix.Getsockname(fd); err == nil {
		c.setLocal(ls)
	}
	c.lastActive.Store(e.tick.Load())
	c.idleTicks.Store(ticksFor(own.idle, e.cfg.TimerTick))
	if !e.table.put(c) {
		unix.Close(fd)
		return
	}
	e.ctr.open.Add(1)
	e.ctr.accepted.Add(1)
	if own.l != nil {
		own.l.open.Add(1)
	}
	if !callSafely("OnOpen", c.id, func() { own.h.OnOpen(c) }) {
		c.CloseWithReason(ReasonHandler)
	}
	c.register()
}
