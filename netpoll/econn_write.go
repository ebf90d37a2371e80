//go:build linux

package netpoll

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

const (
	maxIOV     = 1024    // IOV_MAX on Linux
	minWQChunk = 4 << 10 // small queued writes share chunks of this size
)

func (c *econn) Write(b []byte) error { return c.writeBufs([][]byte{b}) }

func (c *econn) Writev(bufs ...[]byte) error { return c.writeBufs(bufs) }

// writeBufs writes bufs as one message. Under the connection lock it tries the socket
// directly when nothing is queued, and queues (copies) only what the socket did not take,
// so messages from concurrent writers never interleave and a slow peer never blocks the
// caller.
func (c *econn) writeBufs(bufs [][]byte) error {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	c.mu.Lock()
	if c.closed || c.afterFlush {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.exported {
		c.mu.Unlock()
		return fmt.Errorf("write conn %d: %w", c.id, ErrExported)
	}
	if total == 0 {
		c.mu.Unlock()
		return nil
	}
	e := c.eng()
	skip := 0
	tried := c.wq == nil && len(bufs) <= maxIOV
	if tried {
		n, err := c.writeDirect(bufs)
		if n < 0 { // write(2) returns -1 with EAGAIN: never slice with it
			n = 0
		}
		if n > 0 {
			e.ctr.bytesOut.Add(uint64(n))
		}
		if err != nil && err != unix.EAGAIN {
			c.closeLocked(errReason(err, ReasonWriteError))
			c.mu.Unlock()
			c.finish()
			return fmt.Errorf("write conn %d: %w", c.id, err)
		}
		if n == total {
			c.mu.Unlock()
			return nil
		}
		skip = n
	}
	rem := total - skip
	if c.queuedLocked()+rem > e.cfg.WriteHardLimit {
		c.closeLocked(ReasonWriteLimit)
		c.mu.Unlock()
		c.finish()
		return ErrWriteLimit
	}
	kick := false
	if c.wq == nil {
		c.wq = &writeQueue{}
		if tried {
			c.owed &^= epollOut // that room is taken; the full socket makes a new edge
		} else {
			// Too many buffers for one writev: nothing was tried, the socket may have
			// room and no edge would say so. Flush from a worker (or the owner's let-go).
			c.owed |= epollOut
			kick = true
		}
		c.flushedAt.Store(e.tick.Load())
	}
	for _, b := range bufs {
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		c.enqueueLocked(b[skip:])
		skip = 0
	}
	c.wq.n += rem
	e.ctr.queuedBytes.Add(int64(rem))
	if kick {
		c.kickLocked()
	}
	c.mu.Unlock()
	return nil
}

func (c *econn) writeDirect(bufs [][]byte) (int, error) {
	for {
		var n int
		var err error
		if len(bufs) == 1 {
			n, err = rawWrite(int(c.fd), bufs[0])
		} else {
			n, err = rawWritev(int(c.fd), bufs)
		}
		if err != unix.EINTR {
			return n, err
		}
	}
}

// enqueueLocked copies b to the tail of the write queue, into the last chunk's spare
// capacity when it fits so a trickle of small writes does not become many tiny chunks.
func (c *econn) enqueueLocked(b []byte) {
	q := c.wq
	if n := len(q.bufs); n > 0 {
		last := q.bufs[n-1]
		if cap(last)-len(last) >= len(b) {
			q.bufs[n-1] = append(last, b...)
			return
		}
	}
	size := len(b)
	if size < minWQChunk {
		size = minWQChunk
	}
	chunk := make([]byte, len(b), size)
	copy(chunk, b)
	q.bufs = append(q.bufs, chunk)
}

// flushLocked writes the queue with writev until it drains or the socket is full. Called
// by the owning worker, or by CloseAfterFlush paths, with mu held.
func (c *econn) flushLocked() {
	e := c.eng()
	for c.wq != nil {
		q := c.wq
		iov := q.bufs
		if len(iov) > maxIOV {
			iov = iov[:maxIOV]
		}
		n, err := rawWritev(int(c.fd), iov)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			c.closeLocked(errReason(err, ReasonWriteError))
			return
		}
		e.ctr.bytesOut.Add(uint64(n))
		e.ctr.queuedBytes.Add(-int64(n))
		if n > 0 {
			c.flushedAt.Store(e.tick.Load())
		}
		q.n -= n
		q.drained.signal(q.n, false)
		for n > 0 {
			if n >= len(q.bufs[0]) {
				n -= len(q.bufs[0])
				q.bufs[0] = nil
				q.bufs = q.bufs[1:]
				continue
			}
			q.bufs[0] = q.bufs[0][n:]
			n = 0
		}
		if q.n == 0 {
			c.wq = nil // drained: an idle connection holds no buffer
			c.flushedAt.Store(0)
		}
	}
}

// WaitWritable blocks until at most below bytes are queued. It is how a producer streaming
// a large body keeps pace with a slow client without polling or growing the queue.
func (c *econn) WaitWritable(ctx context.Context, below int) error {
	return waitDrained(ctx, &c.mu, below, func() (bool, int, *drainWaiters) {
		if c.wq == nil {
			return c.closed, 0, nil
		}
		return c.closed, c.wq.n, &c.wq.drained
	})
}
