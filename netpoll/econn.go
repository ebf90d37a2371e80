//go:build linux

package netpoll

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"
)

// econn is one epoll-served connection. It is all an idle connection costs in user space
// (plus its 8-byte table slot): no goroutine, no buffer.
//
// Ownership: while busy is true exactly one goroutine (the opener, the dialer, or the
// worker that got the ready event) owns the fd for reading and the pending buffer.
// Everything else is guarded by mu. close(2) on the fd happens only when nobody owns it,
// so a worker never reads from a reused fd.
//
// Registration is edge-triggered and made once (etMask): no epoll_ctl per request. An
// edge that the connection cannot take now (a worker owns it, reads are paused, the write
// queue is over its soft limit) is kept in owed, and whoever makes the connection able to
// take it (the owner letting go, ResumeRead) hands it to a worker then. A read that
// returns less than it asked for has drained the socket, so the next bytes make a new
// edge; a read cut by the per-event budget owes itself another turn.
type econn struct {
	fd  int32
	gen uint32 // with fd, names this connection in epoll data; stale events are dropped
	id  uint64
	own *owner // and through it the engine

	// Sizes matter here: an idle connection is this struct, in a 128-byte size class
	// (econn_size_test.go). The event bits epoll reports (IN, OUT, RDHUP, HUP, ERR, PRI)
	// all fit in 16 bits; the local address is interned per engine (lipIdx).
	mu      sync.Mutex
	revents uint16 // events of the dispatch in progress (written by the poller under mu)
	owed    uint16 // edges not yet served (see above)
	// readyAt is when the bytes the next read takes were seen ready, in microseconds of
	// the engine's clock (epollEngine.micros; it wraps every 71 minutes, and only
	// differences are used): the start of their wait for a worker, which OnData learns
	// through ReadyAt. Set under mu, or by the owner after a read with the kernel's
	// receive stamp (Config.RxTimestamps: when the bytes came); read by the owner.
	readyAt    atomic.Uint32
	reason     CloseReason
	flushWhy   CloseReason // reason for CloseAfterFlush
	closed     bool        // no more I/O; OnClose owed
	fdClosed   bool        // close(2) done
	busy       bool        // owned by one goroutine (see above)
	inTimeout  bool        // OnTimeout running on the sweeper
	notified   bool        // OnClose delivered (or not owed, for a failed dial)
	opened     bool        // OnOpen delivered and counted
	dialing    bool        // connect(2) in progress; ctx holds its *dialWait
	connecting bool        // connect(2) ended: the next serve finishes the dial (ctx: *dialWait)
	registered bool        // EPOLL_CTL_ADD done
	afterFlush bool        // CloseAfterFlush pending
	eof        bool        // the peer half-closed; read no more
	redeliver  bool        // pending bytes must reach OnData without waiting for new ones
	exported   bool        // handed to another process (Migrator.Export): writes refused
	pidx       uint8       // its poller: index into the engine's pollers, round robin
	lport      uint16
	rport      uint16
	lipIdx     uint16        // the local IP: index into the engine's localIPs
	pauses     int16         // PauseRead nesting
	idleTicks  atomic.Uint32 // idle timeout in ticks; 0 disables
	// flushedAt is the coarse-clock tick the write queue last made progress: set when it
	// becomes non-empty and whenever a flush writes bytes, 0 while it is empty.
	flushedAt atomic.Uint32

	pend *bytebufferpool.ByteBuffer // unconsumed bytes of an incomplete frame; owner only
	wq   *writeQueue                // nil unless writes are queued

	// Coarse-clock ticks (see epollEngine.tick); 0 means unset.
	lastActive atomic.Uint32 // tick of the last bytes read (or the last idle timeout)
	pendSince  atomic.Uint32 // tick when pend became non-empty

	ctx any

	rip [16]byte // the peer's address as raw bytes: a *net.TCPAddr would cost two allocations
}

// writeQueue holds what the socket did not take. Only connections with a backlog pay
// for it; it is dropped when drained.
type writeQueue struct {
	bufs    [][]byte     // oldest first
	n       int          // bytes in bufs
	drained drainWaiters // WaitWritable callers
}

// queuedLocked is the number of bytes waiting in the write queue.
func (c *econn) queuedLocked() int {
	if c.wq == nil {
		return 0
	}
	return c.wq.n
}

var _ Conn = (*econn)(nil)

func (c *econn) eng() *epollEngine { return c.own.eng }

// poller is the one whose epoll set holds c, picked round robin when c was made.
func (c *econn) poller() *poller { return c.eng().pollers[c.pidx] }

func (c *econn) ID() uint64                     { return c.id }
func (c *econn) LocalAddr() net.Addr            { return tcpAddr(c.eng().localIPs.get(c.lipIdx), c.lport) }
func (c *econn) RemoteAddr() net.Addr           { return tcpAddr(c.rip, c.rport) }
func (c *econn) RemoteAddrPort() netip.AddrPort { return storedAddr(c.rip, c.rport) }
func (c *econn) Listener() string               { return c.own.name }

func (c *econn) ReadyAt() (ready, now time.Time) { return c.eng().readyAt(c.readyAt.Load()) }

func (c *econn) Context() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

func (c *econn) SetContext(v any) {
	c.mu.Lock()
	c.ctx = v
	c.mu.Unlock()
}

func (c *econn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *econn) PauseRead() {
	c.mu.Lock()
	c.pauses++
	c.mu.Unlock()
}

// ResumeRead re-arms reading; when bytes of an unfinished frame wait from before the
// pause (pipelined HTTP requests, MMTP frames held back at the in-flight cap), it hands the
// connection to a worker at once, since no socket event may ever come for bytes that were
// already read.
func (c *econn) ResumeRead() {
	c.mu.Lock()
	if c.pauses > 0 {
		c.pauses--
		if c.pauses == 0 {
			// Bytes held back by the pause wait from now on: the pause was the handler's.
			// With none held (nothing pending or owed, no owner to leave any), the next
			// bytes are stamped as they come, and the clock need not be read.
			if c.busy || c.pendSince.Load() != 0 || c.owed&(epollIn|epollRdHup) != 0 {
				c.readyAt.Store(c.eng().micros())
			}
			// While a worker owns the connection its OnData may not have returned yet, so
			// the bytes it leaves are not stored as pending: owe a redelivery anyway, and
			// let the owner drop it if nothing is left (redeliverNowLocked).
			if c.busy || c.pendSince.Load() != 0 {
				c.redeliver = true
			}
			if c.redeliverNowLocked() {
				c.mu.Unlock()
				c.eng().dispatch(c)
				return
			}
			c.kickLocked()
		}
	}
	c.mu.Unlock()
}

// redeliverNowLocked takes ownership for a redelivery of pending bytes when one is owed
// and nobody owns the connection; the caller then dispatches it.
func (c *econn) redeliverNowLocked() bool {
	if !c.redeliver || c.busy || c.closed || c.inTimeout || !c.registered || !c.readableLocked() {
		return false
	}
	// Nobody owns the connection (busy is false under mu), so pend is stable here.
	if c.pend == nil {
		c.redeliver = false
		return false
	}
	c.busy, c.revents, c.owed = true, c.owed, 0
	return true
}

// readableLocked says whether the connection wants read events now.
func (c *econn) readableLocked() bool {
	return c.pauses == 0 && !c.eof && !c.afterFlush && c.queuedLocked() < c.eng().cfg.WriteSoftLimit &&
		!c.overBudgetLocked()
}

// etMask is the registration of every connection, made once when it is registered:
// edge-triggered read, write and peer-close interest.
const etMask = epollIn | epollOut | epollRdHup | epollET

// wantsLocked says whether the owed edges are ones the connection can act on now: bytes
// or a peer close to read while reading is on, room to write while writes are queued, a
// dead socket always (it must be closed even while paused).
func (c *econn) wantsLocked() bool {
	if c.owed&(epollHup|epollErr) != 0 {
		return true
	}
	if c.owed&(epollIn|epollRdHup) != 0 && c.readableLocked() {
		return true
	}
	return c.owed&epollOut != 0 && c.wq != nil
}

// takeLocked makes the caller the owner for the owed edges, when there are ones it can
// act on and nobody owns the connection; the caller then dispatches it.
func (c *econn) takeLocked() bool {
	if c.busy || c.closed || c.inTimeout || !c.registered || !c.wantsLocked() {
		return false
	}
	c.busy, c.revents, c.owed = true, c.owed, 0
	return true
}

// kickLocked hands the connection to a worker when edges it could not take before can be
// taken now (reads resumed, the queue under its soft limit). Called off the pollers.
func (c *econn) kickLocked() {
	if c.takeLocked() {
		c.eng().dispatch(c) // non-blocking
	}
}

func (c *econn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedLocked()
}

func (c *econn) SetIdleTimeout(d time.Duration) {
	c.idleTicks.Store(ticksFor(d, c.eng().cfg.TimerTick))
}
