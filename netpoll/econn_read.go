//go:build linux

package netpoll

import (
	"slices"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// minReadRoom is the least free space a read is offered; the buffer doubles from there
// while reads fill it, so pooled buffers stay near the usual message size.
const minReadRoom = 4 << 10

// serve handles one ready event on a pool worker: flush queued writes, read what is there
// (at most ReadPerEvent bytes), hand it to the handler, and re-arm as the last action.
func (c *econn) serve() {
	c.mu.Lock()
	if c.connecting {
		c.connecting = false
		w := c.ctx.(*dialWait)
		c.mu.Unlock()
		c.connected(w, nil)
		return
	}
	if c.closed {
		c.letGoLocked()
		c.mu.Unlock()
		c.finish()
		return
	}
	ev := c.revents
	held := !c.readableLocked() // e.g. the write queue over its soft limit
	if c.wq != nil {
		c.flushLocked()
	}
	canRead := !c.closed && c.readableLocked()
	closed := c.closed
	redeliver := canRead && c.redeliver
	if canRead {
		c.redeliver = false
		if held {
			// This flush let reading resume: what waits in the socket waited for the
			// client to take its answers until now, not for a worker.
			c.readyAt.Store(c.eng().micros())
		}
	} else if !closed {
		// Paused (or over the soft limit) meanwhile: the edge stays owed until reading
		// is on again; the socket will not report those bytes a second time.
		c.owed |= ev & (epollIn | epollRdHup)
	}
	c.mu.Unlock()
	c.eng().ctr.events.Add(1)

	switch {
	case closed:
	case canRead:
		c.readAndDeliver(redeliver, ev&(epollRdHup|epollHup|epollErr) != 0)
	case ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0:
		// Not reading (paused), but the socket is dead: HUP/ERR would fire again on every
		// re-arm, so close now with what the socket says.
		c.CloseWithReason(c.sockErrReason(ReasonPeerEOF))
	}

	c.mu.Lock()
	c.letGoLocked()
	c.mu.Unlock()
	c.finish()
}

func (c *econn) sockErrReason(fallback CloseReason) CloseReason {
	v, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && v != 0 {
		return errReason(unix.Errno(v), ReasonReadError)
	}
	return fallback
}

// readAndDeliver reads into the pending buffer (or a pooled one), calls OnData and keeps
// only the unconsumed remainder. With redeliver, OnData sees the pending bytes even when
// the socket had nothing new. Runs on the owning worker; the fd is safe to use.
func (c *econn) readAndDeliver(redeliver, hup bool) {
	e := c.eng()
	buf := c.pend
	had := 0
	if buf == nil {
		buf = e.bufs.Get()
	} else {
		had = len(buf.B)
	}
	budget := e.cfg.ReadPerEvent
	got := 0
	var rerr error
	eof := false
	var rx int64 // the kernel's receive time of the newest bytes read (RxTimestamps)
	for budget > 0 {
		if cap(buf.B)-len(buf.B) < minReadRoom {
			buf.B = slices.Grow(buf.B, max(len(buf.B), minReadRoom))
		}
		l := len(buf.B)
		chunk := min(cap(buf.B)-l, budget)
		var n int
		var err error
		if e.cfg.RxTimestamps {
			var ts int64
			n, ts, err = rawReadStamped(int(c.fd), buf.B[l:l+chunk])
			rx = max(rx, ts)
		} else {
			n, err = rawRead(int(c.fd), buf.B[l:l+chunk])
		}
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			buf.B = buf.B[:l+n]
			budget -= n
			got += n
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			rerr = err
			break
		}
		if n == 0 {
			eof = true
			break
		}
		if n < chunk && !hup {
			// A short read drained the socket: later bytes make a new edge. Not so the
			// peer's close when it came with these bytes in one edge: read on to the EOF.
			break
		}
	}
	if budget <= 0 {
		// Cut by the per-event budget, not drained: no new edge will say so. Another turn
		// is owed, behind whoever waits for a worker now.
		c.mu.Lock()
		c.owed |= epollIn
		if hup {
			c.owed |= epollRdHup // the FIN is behind those bytes: its edge will not come again
		}
		c.mu.Unlock()
	}
	if got > 0 {
		e.ctr.bytesIn.Add(uint64(got))
		c.lastActive.Store(e.tick.Load())
		if e.cfg.RxTimestamps {
			// ReadyAt: when they reached the socket; the read's own time when the kernel
			// gave no stamp (it turns stamping on a moment after the first socket asks),
			// which they cannot have come after.
			stamp := e.micros()
			if rx > 0 {
				stamp = e.stampOf(rx)
			}
			c.readyAt.Store(stamp)
		}
	}

	reason := ReasonNone
	consumed := 0
	if len(buf.B) > 0 && (got > 0 || redeliver) {
		var herr error
		var panicked bool
		consumed, herr, panicked = callOnData(c.own.h, c, buf.B)
		switch {
		case herr != nil || panicked:
			reason = ReasonHandler
		case consumed < 0 || consumed > len(buf.B):
			reason = ReasonHandler // a handler bug: it cannot consume what it was not given
		default:
			rem := len(buf.B) - consumed
			if rem > 0 && consumed > 0 {
				copy(buf.B, buf.B[consumed:])
			}
			buf.B = buf.B[:rem]
			if rem > e.cfg.MaxPending {
				reason = ReasonPendingLimit
			}
		}
	}
	c.keepPending(buf, had, consumed > 0 && reason == ReasonNone)

	switch {
	case reason != ReasonNone:
		c.CloseWithReason(reason)
	case rerr != nil:
		c.CloseWithReason(errReason(rerr, ReasonReadError))
	case eof:
		// The peer half-closed: deliver nothing more, let queued answers drain, then close.
		c.mu.Lock()
		c.eof = true
		c.mu.Unlock()
		c.CloseAfterFlush(ReasonPeerEOF)
	}
}

// keepPending stores the unconsumed bytes for the next event, or returns the buffer to the
// pool when there are none. A small remainder in a big buffer moves to a small one, so a
// slow-loris partial frame pins little memory. The partial-frame clock runs from when the
// frame the remainder begins arrived: from now when there was none (had == 0), or when
// the handler took whole frames ahead of it (progressed). A client whose reads keep
// ending mid-frame while every frame completes is not a stalled frame.
func (c *econn) keepPending(buf *bytebufferpool.ByteBuffer, had int, progressed bool) {
	e := c.eng()
	rem := len(buf.B)
	e.ctr.pendingBytes.Add(int64(rem - had))
	if rem == 0 {
		// The pool sizes new buffers, and drops big ones, by the lengths it is given
		// back: report the capacity a read needed, or every event would regrow.
		buf.B = buf.B[:cap(buf.B)]
		e.bufs.Put(buf)
		c.pend = nil
		c.pendSince.Store(0)
		return
	}
	if rem <= 1024 && cap(buf.B) > 16<<10 {
		small := &bytebufferpool.ByteBuffer{B: make([]byte, rem, 1024)}
		copy(small.B, buf.B)
		e.bufs.Put(buf)
		buf = small
	}
	c.pend = buf
	if had == 0 || progressed {
		c.pendSince.Store(e.tick.Load())
	}
}
