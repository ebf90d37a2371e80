//go:build linux

package netpoll

import (
	"golang.org/x/sys/unix"
)

func (c *econn) Close() error { return c.CloseWithReason(ReasonLocal) }

// CloseWithReason closes the connection; only the first reason counts. OnClose runs on
// this goroutine when no other goroutine owns the connection, else on the owner when it
// lets go, so it never overlaps OnData.
func (c *econn) CloseWithReason(r CloseReason) error {
	c.mu.Lock()
	c.closeLocked(r)
	c.mu.Unlock()
	c.finish()
	return nil
}

func (c *econn) CloseAfterFlush(r CloseReason) {
	c.mu.Lock()
	if !c.closed {
		if c.wq == nil {
			c.closeLocked(r)
		} else if !c.afterFlush {
			c.afterFlush = true
			c.flushWhy = r
		}
	}
	c.mu.Unlock()
	c.finish()
}

// closeLocked runs the close order: mark closed; EPOLL_CTL_DEL; clear the table slot if
// it still holds c; release buffers; close(fd) last — unless a goroutine owns the fd, in
// which case the socket is only shut down (so the peer sees it now) and the owner frees it
// when it lets go. It reports whether this call closed the connection.
func (c *econn) closeLocked(r CloseReason) bool {
	if c.closed {
		return false
	}
	c.closed = true
	c.reason = r
	e := c.eng()
	if c.connectEndedLocked() { // the dial sees closed, abandons and says so
		e.dispatch(c)
	}
	if c.registered {
		_ = unix.EpollCtl(c.poller().epfd, unix.EPOLL_CTL_DEL, int(c.fd), nil)
	}
	e.table.clear(c)
	if c.wq != nil {
		e.ctr.queuedBytes.Add(-int64(c.wq.n))
		c.wq.drained.signal(c.wq.n, true)
		c.wq = nil
		c.flushedAt.Store(0)
	}
	if c.busy {
		// A migrated socket now belongs to another process too: shutdown(2) would end it
		// there, so only the owner's close(2) follows.
		if r != ReasonMigrated {
			_ = unix.Shutdown(int(c.fd), unix.SHUT_RDWR)
		}
		return true
	}
	c.freeLocked()
	return true
}

// freeLocked releases what only the owner may touch and closes the fd. Called once the
// connection is closed and unowned.
func (c *econn) freeLocked() {
	if c.pend != nil {
		c.eng().ctr.pendingBytes.Add(-int64(len(c.pend.B)))
		c.eng().bufs.Put(c.pend)
		c.pend = nil
		c.pendSince.Store(0)
	}
	if !c.fdClosed {
		c.fdClosed = true
		_ = unix.Close(int(c.fd))
	}
}

// letGoLocked ends a goroutine's ownership: frees a closed connection, or hands an open
// one straight to a worker again when edges came meanwhile that it can act on.
func (c *econn) letGoLocked() {
	c.busy = false
	if c.closed {
		c.freeLocked()
		return
	}
	if c.afterFlush && c.wq == nil {
		c.closeLocked(c.flushWhy)
		return
	}
	if c.owed&(epollIn|epollRdHup) != 0 {
		// Bytes that came during the serve (or that its read budget left): their wait
		// for a worker counts from here. Never the stamp of the serve that ended, which
		// a connection that always has more would keep for good.
		c.readyAt.Store(c.eng().micros())
	}
	if c.redeliverNowLocked() || c.takeLocked() {
		c.eng().dispatch(c) // non-blocking: the pool or the ready queue takes it
	}
}

// finish delivers OnClose exactly once, when the connection is closed and no goroutine
// owns it or is inside a callback for it.
func (c *econn) finish() {
	c.mu.Lock()
	if !c.closed || c.notified || c.busy || c.inTimeout {
		c.mu.Unlock()
		return
	}
	c.notified = true
	r, opened := c.reason, c.opened
	c.mu.Unlock()
	if opened {
		c.eng().connClosed(c, r)
		callSafely("OnClose", c.id, func() { c.own.h.OnClose(c, r) })
	}
}
