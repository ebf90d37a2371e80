package netpoll

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rwEngine is the classic Go server: per connection a read-loop goroutine with its own
// buffer and a write-loop goroutine with its own queue, on net.Conn and the runtime's
// netpoller. It honours the same limits, timeouts (as read deadlines), close reasons and
// counters as the epoll engine, so the two compare fairly.
type rwEngine struct {
	cfg    Config
	ctr    counters
	nextID atomic.Uint64

	mu         sync.Mutex
	capCond    *sync.Cond // signalled when a connection closes or listeners stop
	listeners  map[*rwListener]struct{}
	conns      map[*rwConn]struct{}
	closing    bool
	wg         sync.WaitGroup
	stopBudget chan struct{}
	// closed ends the connects DialAsync has in progress when the engine closes.
	closed context.Context
	stop   context.CancelFunc
}

type rwListener struct {
	ln      net.Listener
	bucket  acceptBucket // accept goroutine only
	own     *owner
	max     int
	open    atomic.Int64
	stopped atomic.Bool
	done    chan struct{}
}

func newRWLoopEngine(cfg Config) *rwEngine {
	e := &rwEngine{cfg: cfg, listeners: make(map[*rwListener]struct{}),
		conns: make(map[*rwConn]struct{})}
	e.capCond = sync.NewCond(&e.mu)
	e.closed, e.stop = context.WithCancel(context.Background())
	if e.cfg.QueuedBudget > 0 || e.cfg.PendingBudget > 0 {
		e.stopBudget = make(chan struct{})
		e.wg.Add(1)
		go e.budgetLoop(e.stopBudget)
	}
	return e
}

func (e *rwEngine) Listen(name, addr string, h Handler, opts ListenerOptions) (net.Addr, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	if opts.ReusePort {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	var ln net.Listener
	var err error
	if opts.InheritFD > 0 {
		// On a duplicate, so the *os.File (and its finalizer) never touches the caller's
		// fd; FileListener dups again and f is closed.
		var nfd int
		if nfd, err = unix.FcntlInt(uintptr(opts.InheritFD), unix.F_DUPFD_CLOEXEC, 0); err == nil {
			f := os.NewFile(uintptr(nfd), name)
			ln, err = net.FileListener(f)
			f.Close()
		}
	} else {
		ln, err = lc.Listen(context.Background(), "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", name, err)
	}
	l := &rwListener{ln: ln, max: opts.MaxConns, done: make(chan struct{}), bucket: newAcceptBucket(opts.AcceptRate)}
	l.own = newOwner(name, h, &e.cfg, opts.IdleTimeout, opts.PartialTimeout, opts.WriteStallTimeout)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		ln.Close()
		return nil, ErrEngineClosed
	}
	e.listeners[l] = struct{}{}
	e.mu.Unlock()
	go e.acceptLoop(l)
	return ln.Addr(), nil
}

// ListenerFD dups the named listener's socket through its RawConn: File() would do the
// same but hand back an *os.File whose Fd() flips the shared socket to blocking.
func (e *rwEngine) ListenerFD(name string) (int, error) {
	e.mu.Lock()
	var ln net.Listener
	for l := range e.listeners {
		if l.own.name == name {
			ln = l.ln
		}
	}
	e.mu.Unlock()
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("listener %q: not listening", name)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("listener %q: %w", name, err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, fmt.Errorf("listener %q: %w", name, err)
	}
	if derr != nil {
		return -1, fmt.Errorf("listener %q: dup: %w", name, derr)
	}
	return nfd, nil
}

func (e *rwEngine) atCapLocked(l *rwListener) bool {
	if l.max > 0 && l.open.Load() >= int64(l.max) {
		return true
	}
	return e.ctr.open.Load() >= int64(e.cfg.MaxConns)
}

func (e *rwEngine) acceptLoop(l *rwListener) {
	defer close(l.done)
	for {
		e.mu.Lock()
		if e.atCapLocked(l) && !l.stopped.Load() {
			e.ctr.acceptPaused.Add(1)
			for e.atCapLocked(l) && !l.stopped.Load() {
				e.capCond.Wait()
			}
		}
		e.mu.Unlock()
		if ok, wait := l.bucket.take(); !ok {
			e.ctr.throttled.Add(1)
			time.Sleep(wait)
			continue
		}
		nc, err := l.ln.Accept()
		if err != nil {
			if l.stopped.Load() {
				return
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		e.ctr.accepted.Add(1)
		e.start(nc, l.own, l)
	}
}

func (e *rwEngine) Dial(ctx context.Context, addr, laddr string, h Handler) (Conn, error) {
	d := net.Dialer{KeepAlive: -1}
	if laddr != "" {
		la, err := net.ResolveTCPAddr("tcp", laddr)
		if err != nil {
			return nil, fmt.Errorf("dial %q: local address %q: %w", addr, laddr, err)
		}
		d.LocalAddr = la
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", addr, err)
	}
	e.ctr.dialed.Add(1)
	return e.start(nc, newOwner("", h, &e.cfg, 0, 0, 0), nil), nil
}

// DialAsync dials on a goroutine of its own: this engine has one per connection anyway.
func (e *rwEngine) DialAsync(addr string, timeout time.Duration, h Handler, done func(Conn, error)) error {
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if closing {
		return ErrEngineClosed
	}
	go func() {
		ctx, cancel := e.closed, context.CancelFunc(func() {})
		if timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, timeout)
		}
		defer cancel()
		done(e.Dial(ctx, addr, "", h))
	}()
	return nil
}

// start registers a connection, calls OnOpen on this goroutine, then starts its two loops.
func (e *rwEngine) start(nc net.Conn, own *owner, l *rwListener) *rwConn {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if e.cfg.KeepAlive > 0 {
			_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: e.cfg.KeepAlive,
				Interval: e.cfg.KeepAlive, Count: 5})
		}
	}
	c := &rwConn{e: e, nc: nc, id: e.nextID.Add(1), own: own, l: l,
		writeSig: make(chan struct{}, 1), done: make(chan struct{}), lastActive: time.Now(),
		idle: own.idle}
	c.cond = sync.NewCond(&c.mu)
	e.mu.Lock()
	shut := e.closing
	e.conns[c] = struct{}{}
	e.wg.Add(2)
	e.mu.Unlock()
	e.ctr.open.Add(1)
	if l != nil {
		l.open.Add(1)
	}
	if !callSafely("OnOpen", c.id, func() { own.h.OnOpen(c) }) {
		c.CloseWithReason(ReasonHandler)
	}
	if shut {
		c.CloseWithReason(ReasonShutdown)
	}
	go c.readLoop()
	go c.writeLoop()
	return c
}

func (e *rwEngine) connClosed(c *rwConn, r CloseReason) {
	e.ctr.open.Add(-1)
	e.ctr.closed[r].Add(1)
	e.mu.Lock()
	if c.l != nil {
		c.l.open.Add(-1)
	}
	delete(e.conns, c)
	e.capCond.Broadcast()
	e.mu.Unlock()
}

func (e *rwEngine) Range(f func(Conn) bool) {
	e.mu.Lock()
	cs := make([]*rwConn, 0, len(e.conns))
	for c := range e.conns {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	for _, c := range cs {
		if !c.Closed() && !f(c) {
			return
		}
	}
}

func (e *rwEngine) Stats() Stats { return e.ctr.snapshot() }

func (e *rwEngine) StopAccepting() {
	e.mu.Lock()
	ls := make([]*rwListener, 0, len(e.listeners))
	for l := range e.listeners {
		ls = append(ls, l)
		l.stopped.Store(true)
		delete(e.listeners, l)
	}
	e.capCond.Broadcast()
	e.mu.Unlock()
	for _, l := range ls {
		l.ln.Close()
		<-l.done
	}
}

func (e *rwEngine) Close() error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	e.mu.Unlock()
	e.stop()
	if e.stopBudget != nil {
		close(e.stopBudget)
	}
	e.StopAccepting()
	e.Range(func(c Conn) bool {
		c.CloseWithReason(ReasonShutdown)
		return true
	})
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	return nil
}
