//go:build linux

package netpoll

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/mgw-project/mgw/internal/clock"
)

// epollEngine is the reactor: a few pollers, one worker pool, a flat fd table and one
// sweeper goroutine for the coarse clock and timeouts. Its goroutine count does not grow
// with connections.
type epollEngine struct {
	cfg     Config
	pollers []*poller
	pool    *ants.PoolWithFunc
	fanout  atomic.Int32 // workers started for one batch of events at most (dispatchBatch)
	ready   readyQueue
	table   *connTable
	ctr     counters
	bufs    bytebufferpool.Pool // read buffers, borrowed per event; ours so sizes fit our traffic

	nextID  atomic.Uint64
	nextGen atomic.Uint32
	rr      atomic.Uint32 // round robin over pollers
	tick    atomic.Uint32 // coarse clock in TimerTicks since start (from 1), advanced by the sweeper
	born    time.Time     // the zero of micros
	// clockBase is a recent time.Now, taken again each sweeper tick: readyAt's time is it
	// plus the monotonic time since, one clock read instead of time.Now's two, with a
	// wall reading at most a tick behind any step of the wall clock (the auth filter
	// checks a request's timestamp against it).
	clockBase atomic.Pointer[time.Time]

	lmu       sync.RWMutex
	listeners map[int]*elistener // by fd; few, looked up only for listener events

	localIPs ipTable

	// budgetStopped is set when a connection was refused reading for an engine-wide
	// budget; the sweeper then serves the stopped ones once the engine is back under.
	budgetStopped atomic.Bool

	closing   atomic.Bool
	closeOnce sync.Once
	sweepStop chan struct{}
	sweepDone chan struct{}
}

// poolExpiry is how long an idle worker goroutine lives: after a burst the pool shrinks
// back within about two of these, so idle connections leave only a few goroutines. The
// gateway serves API calls on these workers (and their backends' answers come back on
// them), so a burst raises as many as it raised request tasks, and they go as soon;
// under steady load a worker is reused long before it would expire.
const poolExpiry = 100 * time.Millisecond

func newEpollEngine(cfg Config) (*epollEngine, error) {
	var rl unix.Rlimit
	maxFD := 1 << 20
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < uint64(maxFD) {
		maxFD = int(rl.Max)
	}
	e := &epollEngine{
		cfg:       cfg,
		table:     newConnTable(maxFD),
		listeners: make(map[int]*elistener),
		sweepStop: make(chan struct{}),
		sweepDone: make(chan struct{}),
		born:      time.Now(),
	}
	e.tick.Store(1)
	e.resetClock()
	e.setFanout()
	e.ready.alarm = time.AfterFunc(time.Hour, e.readyAlarm)
	e.ready.alarm.Stop()
	pool, err := ants.NewPoolWithFunc(cfg.Workers, e.work, ants.WithNonblocking(true),
		ants.WithExpiryDuration(poolExpiry))
	if err != nil {
		return nil, fmt.Errorf("epoll engine: worker pool: %w", err)
	}
	e.pool = pool
	for i := 0; i < cfg.Pollers; i++ {
		p, err := newPoller(e)
		if err != nil {
			e.closing.Store(true)
			for _, q := range e.pollers {
				q.wake()
				<-q.done
				q.closeFDs()
			}
			pool.Release()
			return nil, fmt.Errorf("epoll engine: poller %d: %w", i, err)
		}
		e.pollers = append(e.pollers, p)
		go p.loop()
	}
	go e.sweeper()
	return e, nil
}

// resetClock takes clockBase from the wall clock again.
func (e *epollEngine) resetClock() {
	now := time.Now()
	e.clockBase.Store(&now)
}

func (e *epollEngine) pickPoller() *poller { return e.pollers[e.pickIdx()] }

// micros is the engine's clock for readiness stamps (econn.readyAt): microseconds since
// the engine started, modulo 2^32 (71 minutes), never 0 (0 is "no stamp").
func (e *epollEngine) micros() uint32 { return max(1, uint32(time.Since(e.born)/time.Microsecond)) }

// stampOf is a stamp of micros for a wall-clock time in nanoseconds (the kernel's
// receive time, Config.RxTimestamps), read against the engine's clock: the wall clock
// and the monotonic one move together between two resetClock. A time from the future
// (the two clocks disagree by a step) is now.
func (e *epollEngine) stampOf(wallNs int64) uint32 {
	now := clock.From(*e.clockBase.Load())
	age := max(0, time.Duration(now.UnixNano()-wallNs))
	return max(1, uint32((now.Sub(e.born)-age)/time.Microsecond))
}

// readyAt turns a stamp of micros into a time: now less the stamp's age, which the
// wrap-around of both cannot spoil. An unset stamp is now, and so is one that reads as
// from the future (an age past 2^31 µs: a stamp taken in the microsecond micros maps 0
// to 1, read in that same microsecond).
// It returns the time now as well, read from the monotonic clock only (clockBase).
func (e *epollEngine) readyAt(stamp uint32) (ready, now time.Time) {
	now = clock.From(*e.clockBase.Load())
	age := uint32(now.Sub(e.born)/time.Microsecond) - stamp
	if stamp == 0 || age >= 1<<31 {
		return now, now
	}
	return now.Add(-time.Duration(age) * time.Microsecond), now
}

// pickIdx picks the poller of a new connection, round robin. Not fd modulo the pollers:
// the upstream pool's dials take fds from the same table, and a ramp in which every
// accepted connection dials one would put all the clients on one poller.
func (e *epollEngine) pickIdx() uint8 { return uint8(int(e.rr.Add(1)) % len(e.pollers)) }

// ipTable interns the local IPs of connections: a box has a handful, so each connection
// keeps a 2-byte index instead of 16 bytes. Entries are never removed; past 65535
// distinct IPs (never seen on a real box) a connection gets index 0, the unspecified
// address.
type ipTable struct {
	mu  sync.RWMutex
	ips [][16]byte
	idx map[[16]byte]uint16
}

func (t *ipTable) intern(ip [16]byte) uint16 {
	t.mu.RLock()
	i, ok := t.idx[ip]
	t.mu.RUnlock()
	if ok {
		return i
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.idx[ip]; ok {
		return i
	}
	if t.idx == nil {
		t.ips, t.idx = [][16]byte{{}}, map[[16]byte]uint16{{}: 0} // 0: the unspecified address
	}
	if len(t.ips) > 0xffff {
		return 0
	}
	i = uint16(len(t.ips))
	t.ips = append(t.ips, ip)
	t.idx[ip] = i
	return i
}

func (t *ipTable) get(i uint16) [16]byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if int(i) >= len(t.ips) {
		return [16]byte{}
	}
	return t.ips[i]
}

// setLocal records the connection's local address.
func (c *econn) setLocal(sa unix.Sockaddr) {
	ip, port := rawAddr(sa)
	c.lipIdx, c.lport = c.eng().localIPs.intern(ip), port
}

func (e *epollEngine) newGen() uint32 {
	for {
		if g := e.nextGen.Add(1); g != 0 {
			return g
		}
	}
}

// dispatch hands an owned, ready connection to a worker without blocking; when the pool
// is full it waits in the ready queue (for a worker that frees, or the queue's alarm).
// Any goroutine may call it.
func (e *epollEngine) dispatch(c *econn) {
	if err := e.pool.Invoke(c); err != nil {
		// Also when the pool is closed (shutdown): Close serves the queue after the
		// pool is gone. Never serve inline here: letGoLocked dispatches under c.mu.
		e.ready.push(c)
	}
}

// dispatchBatch hands a poller's batch of taken connections to workers. At most fanout
// workers start for it (as many as can run at once); the rest wait in the ready queue,
// which each worker serves from as it frees (work). A worker and a goroutine switch per
// connection was the largest cost of the reactor itself (scheduler, pool and channel:
// about 1.4 us of user time a proxied request on one core); handlers never block, so a
// worker serving several in a row delays none more than the core would. If the workers
// do block, more start once a connection has waited readyPatience (readyAlarm).
func (e *epollEngine) dispatchBatch(batch []*econn) {
	k := min(len(batch), int(e.fanout.Load()))
	if len(batch) > k {
		e.ready.push(batch[k:]...)
	}
	for _, c := range batch[:k] {
		e.dispatch(c)
	}
}

// readyPatience is how long a connection waits in the ready queue for the workers
// already running before more are started for it.
const readyPatience = time.Millisecond

// readyAlarm runs readyPatience after connections began to wait in the ready queue, if
// they still do: the workers started for them may be stuck (handlers should not block,
// but one that does must not hold the rest of its batch), so each gets one of its own,
// and the alarm is set again while any still wait (a full pool).
func (e *epollEngine) readyAlarm() {
	if e.closing.Load() {
		return
	}
	e.drainReady()
	e.ready.rearm()
}

// setFanout sizes dispatchBatch's workers by GOMAXPROCS, which the runtime may change as
// the container's CPU limit does; the sweeper calls it every tick.
func (e *epollEngine) setFanout() {
	e.fanout.Store(int32(max(1, min(runtime.GOMAXPROCS(0), e.cfg.Workers))))
}

// work is the pool function: serve the given connection (or none, for a drain task), then
// whatever waits in the ready queue, so queued connections go to workers as they free.
func (e *epollEngine) work(arg any) {
	if c, ok := arg.(*econn); ok && c != nil {
		c.serve()
	}
	for {
		c := e.ready.pop()
		if c == nil {
			return
		}
		c.serve()
	}
}

// drainReady offers queued ready connections to free workers (readyAlarm). The
// task argument is the engine itself: ants treats a nil argument as "worker, exit".
func (e *epollEngine) drainReady() {
	for n := e.ready.len(); n > 0; n-- {
		if e.pool.Invoke(e) != nil {
			return
		}
	}
}

// drainInline serves queued connections on the caller, once the pool is gone (shutdown),
// so each still gets its OnClose.
func (e *epollEngine) drainInline() {
	for c := e.ready.pop(); c != nil; c = e.ready.pop() {
		c.serve()
	}
}

func (e *epollEngine) listenerByFD(fd int) *elistener {
	e.lmu.RLock()
	l := e.listeners[fd]
	e.lmu.RUnlock()
	return l
}

// register puts a connection that has been through OnOpen into epoll, or frees it if it
// was closed meanwhile. It ends the opener's ownership.
func (c *econn) register() {
	c.mu.Lock()
	if !c.closed {
		// The one registration of the connection's life (a dialed one changes its
		// connect-time registration). Bytes already in the socket make an edge now.
		var err error
		if c.registered {
			err = c.poller().mod(int(c.fd), c.gen, etMask)
		} else {
			err = c.poller().add(int(c.fd), c.gen, etMask)
			c.registered = err == nil
		}
		if err != nil {
			c.closeLocked(ReasonReadError)
		}
	}
	c.busy = false
	if c.closed {
		c.freeLocked()
	}
	c.mu.Unlock()
	c.finish()
}

// connClosed updates counters once per opened connection and lets a listener paused at
// a cap accept again.
func (e *epollEngine) connClosed(c *econn, r CloseReason) {
	e.ctr.open.Add(-1)
	e.ctr.closed[r].Add(1)
	if l := c.own.l; l != nil {
		l.open.Add(-1)
	}
	e.lmu.RLock()
	for _, l := range e.listeners {
		if l.paused.Load() {
			l.wake()
		}
	}
	e.lmu.RUnlock()
}

func (e *epollEngine) Range(f func(Conn) bool) {
	e.table.each(func(c *econn) bool {
		c.mu.Lock()
		ok := c.opened && !c.closed
		c.mu.Unlock()
		if !ok {
			return true
		}
		return f(c)
	})
}

func (e *epollEngine) Stats() Stats {
	s := e.ctr.snapshot()
	s.PoolRunning = e.pool.Running()
	s.PoolWaiting = e.ready.len()
	s.PoolCap = e.pool.Cap()
	return s
}

func (e *epollEngine) StopAccepting() {
	e.lmu.RLock()
	ls := make([]*elistener, 0, len(e.listeners))
	for _, l := range e.listeners {
		ls = append(ls, l)
	}
	e.lmu.RUnlock()
	for _, l := range ls {
		l.stop()
	}
}

func (e *epollEngine) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.StopAccepting()
		e.table.each(func(c *econn) bool {
			c.CloseWithReason(ReasonShutdown)
			return true
		})
		close(e.sweepStop)
		<-e.sweepDone
		for _, p := range e.pollers {
			p.wake()
			<-p.done
		}
		_ = e.pool.ReleaseTimeout(10 * time.Second)
		e.drainInline()
		for _, p := range e.pollers {
			p.closeFDs()
		}
	})
	return nil
}
