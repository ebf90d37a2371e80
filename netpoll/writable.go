package netpoll

import (
	"context"
	"sync"
)

// drainWaiters lets WaitWritable callers sleep until a write queue is down to their
// threshold. Guarded by the connection's lock; the channel exists only while someone
// waits.
type drainWaiters struct {
	ch chan struct{}
	at int // the highest threshold waited for: lower ones wake and wait again
}

// signal wakes the waiters once queued is at their threshold, or all of them when the
// connection closes.
func (d *drainWaiters) signal(queued int, closing bool) {
	if d.ch != nil && (closing || queued <= d.at) {
		close(d.ch)
		d.ch, d.at = nil, 0
	}
}

// waitDrained is WaitWritable for either engine. look reports, under mu, whether the
// connection is closed, how many bytes are queued and the waiters of its queue.
func waitDrained(ctx context.Context, mu *sync.Mutex, below int,
	look func() (closed bool, queued int, d *drainWaiters)) error {
	for {
		mu.Lock()
		closed, queued, d := look()
		if closed {
			mu.Unlock()
			return ErrClosed
		}
		if queued <= below {
			mu.Unlock()
			return nil
		}
		if d.ch == nil {
			d.ch, d.at = make(chan struct{}), below
		} else if below > d.at {
			d.at = below
		}
		ch := d.ch
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
