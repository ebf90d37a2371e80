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
	mu   sync.Mutex
	q    []*econn
	head int
	// alarm fires readyPatience after the queue went from empty to not, so that waiting
	// connections get workers of their own if those already running are stuck (or the
	// pool was full), even when no event comes; stopped when the queue empties. armed
	// says it is set.
	alarm *time.Timer
	armed bool
}

func (r *readyQueue) push(cs ...*econn) {
	r.mu.Lock()
	if r.head == len(r.q) {
		r.armLocked()
	}
	r.q = append(r.q, cs...)
	r.mu.Unlock()
}

func (r *readyQueue) armLocked() {
	if r.alarm != nil {
		r.alarm.Reset(readyPatience)
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
		r.q, r.head = r.q[:0], 0
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
