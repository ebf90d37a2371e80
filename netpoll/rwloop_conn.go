package netpoll

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const rwInitialBuf = 4 << 10

// rwConn is a goroutine-per-connection connection: readLoop owns the read buffer and runs
// every handler callback (so OnData, OnTimeout and OnClose never overlap), writeLoop owns
// the socket's write side and drains the queue with writev.
type rwConn struct {
	e   *rwEngine
	nc  net.Conn
	id  uint64
	own *owner
	l   *rwListener

	mu         sync.Mutex
	cond       *sync.Cond // read pause / resume
	wq         net.Buffers
	queued     int          // queued plus in flight in writeLoop
	drained    drainWaiters // WaitWritable callers
	pauses     int
	resumed    bool // a ResumeRead since the last OnData: pending bytes are owed a delivery
	closed     bool
	afterFlush bool
	flushWhy   CloseReason
	reason     CloseReason
	ctx        any
	lastActive time.Time
	readyAt    time.Time     // see ReadyAt
	idle       time.Duration // idle timeout; 0 disables
	writeSig   chan struct{}
	done       chan struct{}
	pendN      atomic.Int64 // len of readLoop's buffer (pending bytes), for the budget loop
}

var _ Conn = (*rwConn)(nil)

func (c *rwConn) ID() uint64           { return c.id }
func (c *rwConn) LocalAddr() net.Addr  { return c.nc.LocalAddr() }
func (c *rwConn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }
func (c *rwConn) RemoteAddrPort() netip.AddrPort {
	if a, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
func (c *rwConn) Listener() string { return c.own.name }

func (c *rwConn) Context() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

func (c *rwConn) SetContext(v any) {
	c.mu.Lock()
	c.ctx = v
	c.mu.Unlock()
}

func (c *rwConn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// ReadyAt is when the read that brought the bytes returned (this engine has no queue in
// front of its goroutine-per-connection reads), or, for bytes held back by PauseRead,
// when reading resumed.
func (c *rwConn) ReadyAt() (ready, now time.Time) {
	now = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readyAt.IsZero() {
		return now, now // nothing read yet, as the epoll engine's unset stamp
	}
	return c.readyAt, now
}

func (c *rwConn) PauseRead() {
	c.mu.Lock()
	c.pauses++
	c.mu.Unlock()
}

func (c *rwConn) ResumeRead() {
	c.mu.Lock()
	if c.pauses > 0 {
		c.pauses--
		c.resumed = c.pauses == 0
		if c.resumed {
			c.readyAt = time.Now()
		}
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *rwConn) Write(b []byte) error { return c.Writev(b) }

// Writev copies the message to the queue as one unit; the write loop sends units in
// order, so concurrent writers never interleave.
func (c *rwConn) Writev(bufs ...[]byte) error {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	c.mu.Lock()
	if c.closed || c.afterFlush {
		c.mu.Unlock()
		return ErrClosed
	}
	if total == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.queued+total > c.e.cfg.WriteHardLimit {
		c.closeLocked(ReasonWriteLimit)
		c.mu.Unlock()
		return ErrWriteLimit
	}
	msg := make([]byte, 0, total)
	for _, b := range bufs {
		msg = append(msg, b...)
	}
	c.wq = append(c.wq, msg)
	c.queued += total
	c.e.ctr.queuedBytes.Add(int64(total))
	c.mu.Unlock()
	select {
	case c.writeSig <- struct{}{}:
	default:
	}
	return nil
}

func (c *rwConn) Close() error { return c.CloseWithReason(ReasonLocal) }

func (c *rwConn) CloseWithReason(r CloseReason) error {
	c.mu.Lock()
	c.closeLocked(r)
	c.mu.Unlock()
	return nil
}

func (c *rwConn) CloseAfterFlush(r CloseReason) {
	c.mu.Lock()
	if !c.closed {
		if c.queued == 0 {
			c.closeLocked(r)
		} else {
			c.afterFlush, c.flushWhy = true, r
		}
	}
	c.mu.Unlock()
}

// closeLocked closes the socket (which ends both loops); OnClose follows from readLoop.
func (c *rwConn) closeLocked(r CloseReason) {
	if c.closed {
		return
	}
	c.closed, c.reason = true, r
	c.e.ctr.queuedBytes.Add(-int64(c.queued))
	c.wq, c.queued = nil, 0
	c.drained.signal(c.queued, true)
	close(c.done)
	c.cond.Broadcast()
	_ = c.nc.Close()
}

func (c *rwConn) writeLoop() {
	defer c.e.wg.Done()
	for {
		select {
		case <-c.done:
			return
		case <-c.writeSig:
		}
		for {
			c.mu.Lock()
			bufs := c.wq
			c.wq = nil
			c.mu.Unlock()
			if len(bufs) == 0 {
				break
			}
			total := 0
			for _, b := range bufs {
				total += len(b)
			}
			err := c.writeAll(bufs)
			c.mu.Lock()
			if !c.closed {
				c.queued -= total
				c.e.ctr.queuedBytes.Add(-int64(total))
				if err != nil {
					c.closeLocked(ioReason(err, ReasonWriteError))
				} else if c.afterFlush && c.queued == 0 {
					c.closeLocked(c.flushWhy)
				}
				c.cond.Broadcast() // below the soft limit again, perhaps
				c.drained.signal(c.queued, false)
			}
			c.mu.Unlock()
		}
	}
}

// writeAll writes bufs to the socket. With a write stall timeout it writes in slices of a
// quarter of it, each with its own deadline: a slice that wrote something is progress,
// and once none did for the whole timeout the write is a stall. Counting from the end of
// the last slice that wrote is never early and at most a slice late.
func (c *rwConn) writeAll(bufs net.Buffers) error {
	stall := c.own.stall
	slice := max(stall/4, time.Millisecond)
	last := time.Now()
	for {
		if stall > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(slice))
		}
		n, err := bufs.WriteTo(c.nc) // consumes what it wrote from bufs
		c.e.ctr.bytesOut.Add(uint64(n))
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if n > 0 {
			last = time.Now()
		} else if time.Since(last) >= stall {
			return errWriteStall
		}
	}
}

var errWriteStall = errors.New("netpoll: write made no progress for the write stall timeout")

// ioReason maps a net.Conn error to a close reason.
func ioReason(err error, fallback CloseReason) CloseReason {
	switch {
	case errors.Is(err, errWriteStall):
		return ReasonWriteStall
	case errors.Is(err, io.EOF):
		return ReasonPeerEOF
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED):
		return ReasonPeerReset
	}
	return fallback
}

// waitReadable blocks while reading is paused (by the handler or by the soft write
// limit); false once closed. resumed says a ResumeRead came since the last delivery, so
// bytes kept from before must be offered again before waiting on the socket.
func (c *rwConn) waitReadable() (open, resumed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && (c.pauses > 0 || c.afterFlush || c.queued >= c.e.cfg.WriteSoftLimit) {
		c.cond.Wait()
	}
	resumed, c.resumed = c.resumed, false
	return !c.closed, resumed
}

// deadline picks the read deadline: the partial-frame one while bytes are pending, else
// the idle one; zero for none.
func (c *rwConn) deadline(pendSince time.Time) time.Time {
	var d time.Time
	if p := c.own.partial; p > 0 && !pendSince.IsZero() {
		d = pendSince.Add(p)
	}
	c.mu.Lock()
	idle, last := c.idle, c.lastActive
	c.mu.Unlock()
	if idle > 0 {
		if id := last.Add(idle); d.IsZero() || id.Before(d) {
			d = id
		}
	}
	return d
}

// SetIdleTimeout moves the pending read's deadline too, so a shorter timeout set from
// another goroutine applies at once (a pending partial-frame deadline may then wait
// until this one passes; the read loop recomputes both after every wake-up).
func (c *rwConn) SetIdleTimeout(d time.Duration) {
	c.mu.Lock()
	c.idle = max(d, 0)
	last := c.lastActive
	c.mu.Unlock()
	if d > 0 {
		_ = c.nc.SetReadDeadline(last.Add(d))
	}
}

func (c *rwConn) readLoop() {
	e := c.e
	defer e.wg.Done()
	buf := make([]byte, 0, rwInitialBuf)
	var pendSince time.Time
	reason := ReasonNone
	for reason == ReasonNone {
		open, resumed := c.waitReadable()
		if !open {
			break
		}
		if resumed && len(buf) > 0 {
			consumed, herr, panicked := callOnData(c.own.h, c, buf)
			if herr != nil || panicked || consumed < 0 || consumed > len(buf) {
				reason = ReasonHandler
				continue
			}
			e.ctr.pendingBytes.Add(-int64(consumed))
			c.pendN.Add(-int64(consumed))
			buf = buf[:copy(buf, buf[consumed:])]
			if consumed > 0 {
				pendSince = time.Time{} // what is left began after what was taken
				continue                // the handler may have paused again; wait before reading
			}
		}
		if len(buf) > 0 && pendSince.IsZero() {
			pendSince = time.Now()
		}
		if len(buf) == 0 {
			pendSince = time.Time{}
		}
		_ = c.nc.SetReadDeadline(c.deadline(pendSince))
		if cap(buf)-len(buf) < rwInitialBuf/2 {
			nb := make([]byte, len(buf), min(2*cap(buf), len(buf)+e.cfg.ReadPerEvent))
			copy(nb, buf)
			buf = nb
		}
		room := min(cap(buf)-len(buf), e.cfg.ReadPerEvent)
		n, err := c.nc.Read(buf[len(buf) : len(buf)+room])
		if n > 0 {
			e.ctr.events.Add(1)
			e.ctr.bytesIn.Add(uint64(n))
			c.mu.Lock()
			c.lastActive = time.Now()
			c.readyAt = c.lastActive
			c.mu.Unlock()
			buf = buf[:len(buf)+n]
			e.ctr.pendingBytes.Add(int64(n)) // the counter holds len(buf) throughout
			c.pendN.Add(int64(n))
			consumed, herr, panicked := callOnData(c.own.h, c, buf)
			switch {
			case herr != nil || panicked || consumed < 0 || consumed > len(buf):
				reason = ReasonHandler
				continue
			default:
				e.ctr.pendingBytes.Add(-int64(consumed))
				c.pendN.Add(-int64(consumed))
				buf = buf[:copy(buf, buf[consumed:])]
				if consumed > 0 {
					pendSince = time.Time{} // what is left began after what was taken
				}
				if len(buf) == 0 && cap(buf) > 4*rwInitialBuf {
					buf = make([]byte, 0, rwInitialBuf)
				}
				if len(buf) > e.cfg.MaxPending {
					reason = ReasonPendingLimit
					continue
				}
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			c.timedOut(pendSince, len(buf) > 0)
			if len(buf) > 0 && !pendSince.IsZero() && time.Since(pendSince) >= c.own.partial {
				pendSince = time.Now()
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if errors.Is(err, io.EOF) {
			c.CloseAfterFlush(ReasonPeerEOF)
			break
		}
		reason = ioReason(err, ReasonReadError)
	}
	if reason != ReasonNone {
		c.CloseWithReason(reason)
	}
	e.ctr.pendingBytes.Add(-int64(len(buf)))
	c.pendN.Add(-int64(len(buf)))
	<-c.done // a half-closed connection may still be flushing its last answers
	c.mu.Lock()
	r := c.reason
	c.mu.Unlock()
	e.connClosed(c, r)
	callSafely("OnClose", c.id, func() { c.own.h.OnClose(c, r) })
}

// timedOut decides which deadline passed and tells the handler; the deadline restarts.
func (c *rwConn) timedOut(pendSince time.Time, pending bool) {
	now := time.Now()
	if p := c.own.partial; pending && p > 0 && !pendSince.IsZero() && now.Sub(pendSince) >= p {
		if !callSafely("OnTimeout", c.id, func() { c.own.h.OnTimeout(c, TimeoutPartial) }) {
			c.CloseWithReason(ReasonHandler)
		}
		return
	}
	c.mu.Lock()
	idle := c.idle > 0 && now.Sub(c.lastActive) >= c.idle
	if idle {
		c.lastActive = now
	}
	c.mu.Unlock()
	if idle && !callSafely("OnTimeout", c.id, func() { c.own.h.OnTimeout(c, TimeoutIdle) }) {
		c.CloseWithReason(ReasonHandler)
	}
}

func (c *rwConn) QueuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

func (c *rwConn) WaitWritable(ctx context.Context, below int) error {
	return waitDrained(ctx, &c.mu, below, func() (bool, int, *drainWaiters) {
		return c.closed, c.queued, &c.drained
	})
}
