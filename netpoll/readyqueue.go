//go:build linux

package netpoll

import (
	"sync"
	"time"
)

// readyQueue holds ready connections for the workers already running: those of a batch
// beyond the workers started for it (dispatchBatch), and those the pool had no room for.
// They are not re-armed, so waiting costs nothing but a slot here; workers take them FIFO
// as they free.
type readyQueue struct {
	mu    sync.Mutex
	q     []*econn
	head  int
	since uint32 // engine micros when the queue last went from empty to not (0: empty)
	// alarm fires readyPatience after a batch's connections began to wait (pushAll), so
	// that they get workers of their own if those already running are stuck, even when
	// no event comes; stopped when the queue empties. armed says it is set.
	alarm *time.Timer
	armed bool
}

func (r *readyQueue) push(c *econn) {
	r.mu.Lock()
	if r.since == 0 && r.head == len(r.q) {
		r.since = 1 // a pool with no room: patience does not apply, the wait is old at once
	}
	r.q = append(r.q, c)
	r.mu.Unlock()
}

// pushAll queues a batch's connections, now (engine micros) being when they began to wait.
func (r *readyQueue) pushAll(cs []*econn, now uint32) {
	r.mu.Lock()
	if r.head == len(r.q) {
		r.since = now
		r.armLocked()
	}
	r.q = append(r.q, cs...)
	r.mu.Unlock()
}

func (r *readyQueue) armLocked() {
	if r.alarm != nil {
		r.alarm.Reset(readyPatience * time.Microsecond)
		r.armed = true
	}
}

// rearm sets the alarm again while connections still wait.
func (r *readyQueue) rearm() {
	r.mu.Lock()
	if r.head < len(r.q) {
		r.armLocked()
	}
	r.mu.Unlock()
}

// waited is how long (µs) the queue has not been empty, at now (engine micros).
func (r *readyQueue) waited(now uint32) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.head == len(r.q) || r.since == 0 {
		return 0
	}
	return now - r.since
}

func (r *readyQueue) pop() *econn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.head == len(r.q) {
		return nil
	}
	c := r.q[r.head]
	r.q[r.head] = nil
	r.head++
	if r.head == len(r.q) {
		r.q, r.head, r.since = r.q[:0], 0, 0
		if r.armed {
			r.alarm.Stop()
			r.armed = false
		}
	}
	return c
}

func (r *readyQueue) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) - r.head
}
