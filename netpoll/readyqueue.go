//go:build linux

package netpoll

import "sync"

// readyQueue holds ready connections while every worker is busy. They are not re-armed,
// so waiting costs nothing but a slot here; workers take them FIFO as they free.
type readyQueue struct {
	mu   sync.Mutex
	q    []*econn
	head int
}

func (r *readyQueue) push(c *econn) {
	r.mu.Lock()
	r.q = append(r.q, c)
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
	}
	return c
}

func (r *readyQueue) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) - r.head
}
