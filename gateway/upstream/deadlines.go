package upstream

import (
	"sync"
	"time"
)

// maxDeadlineLists bounds how many distinct timeouts share the deadline queue; a call
// with yet another timeout gets a timer of its own.
const maxDeadlineLists = 8

// deadlines holds the deadlines of a cluster's asynchronous calls under one timer instead
// of one per call: starting and stopping a runtime timer cost about a third of a
// microsecond a request, a tenth of the gateway's own time on the API path (issue 11).
//
// Calls with one timeout end their wait in the order they began, so each timeout's calls
// form a list sorted by deadline (to within the microseconds between reading the clock
// and taking the lock). The timer waits for the earliest head; a head that ends first
// leaves the timer early, and it then waits again for the new earliest head.
type deadlines struct {
	mu    sync.Mutex
	lists []*deadlineList
	timer *time.Timer
	armed time.Time // when the timer fires; zero: it is not armed
}

// deadlineList is the calls of one timeout, oldest first.
type deadlineList struct {
	timeout    time.Duration
	head, tail *asyncCall
}

// add arms a's deadline (a.deadline, begun with timeout). It reports false when a should
// have its own timer: its timeout is one too many.
func (d *deadlines) add(a *asyncCall, timeout time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.list(timeout)
	if l == nil {
		return false
	}
	a.dl, a.dlPrev, a.dlNext = l, l.tail, nil
	if l.tail != nil {
		l.tail.dlNext = a
	} else {
		l.head = a
	}
	l.tail = a
	if d.armed.IsZero() || a.deadline.Before(d.armed) {
		d.armLocked(a.deadline)
	}
	return true
}

// list returns timeout's list, made if there is room for one more.
func (d *deadlines) list(timeout time.Duration) *deadlineList {
	for _, l := range d.lists {
		if l.timeout == timeout {
			return l
		}
	}
	if len(d.lists) == maxDeadlineLists {
		return nil
	}
	l := &deadlineList{timeout: timeout}
	d.lists = append(d.lists, l)
	return l
}

// remove takes a's deadline away, if it is still queued.
func (d *deadlines) remove(a *asyncCall) {
	d.mu.Lock()
	if a.dl != nil {
		a.unlinkDeadline()
	}
	d.mu.Unlock()
}

func (a *asyncCall) unlinkDeadline() {
	l := a.dl
	if a.dlPrev != nil {
		a.dlPrev.dlNext = a.dlNext
	} else {
		l.head = a.dlNext
	}
	if a.dlNext != nil {
		a.dlNext.dlPrev = a.dlPrev
	} else {
		l.tail = a.dlPrev
	}
	a.dl, a.dlPrev, a.dlNext = nil, nil, nil
}

func (d *deadlines) armLocked(at time.Time) {
	d.armed = at
	wait := time.Until(at)
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
		return
	}
	d.timer.Reset(wait)
}

// fire expires every call whose deadline has passed and waits for the next one. The
// expired are unlinked under the lock and expired after it: expire delivers to callers.
func (d *deadlines) fire() {
	now := time.Now()
	var due []*asyncCall
	d.mu.Lock()
	d.armed = time.Time{}
	var next time.Time
	kept := d.lists[:0]
	for _, l := range d.lists {
		for a := l.head; a != nil && !a.deadline.After(now); a = l.head {
			a.unlinkDeadline()
			due = append(due, a)
		}
		if l.head == nil {
			continue // an empty list goes: a timeout no route uses any more frees its slot
		}
		kept = append(kept, l)
		if next.IsZero() || l.head.deadline.Before(next) {
			next = l.head.deadline
		}
	}
	clear(d.lists[len(kept):])
	d.lists = kept
	if !next.IsZero() {
		d.armLocked(next)
	}
	d.mu.Unlock()
	for _, a := range due {
		a.expire()
	}
}
