package openloop

import (
	"context"
	"time"
)

// Run calls fire once for every intended send time of s that falls in [start, start+d),
// in order, from the calling goroutine, and returns how many it fired. It sleeps until each
// intended time; when it falls behind (fire was slow, the box was busy) it fires the late
// ones at once, still passing their intended times, so the lateness is charged to latency
// rather than silently dropped. It stops early when ctx is done.
//
// fire must not block for long: hand the request to the connection and return. The
// response side computes latency as (receive time - intended).
func Run(ctx context.Context, s *Schedule, start time.Time, d time.Duration, fire func(intended time.Time)) int {
	return RunBatched(ctx, s, start, d, fire, nil)
}

// maxBatch bounds how many sends RunBatched lets wait for one flush when it is far behind.
const maxBatch = 4096

// RunBatched is Run for a fire that may only queue its request: flush sends what fire
// queued, and is called before each sleep, every maxBatch sends and at the end. On
// schedule that is after every send, as Run; behind schedule, the late sends go out
// together (a connection picked several times gets them in one write), so a scheduler
// short of CPU spends less of it per send and catches up. Their intended times, and so
// the lateness charged to latency, are unchanged.
func RunBatched(ctx context.Context, s *Schedule, start time.Time, d time.Duration, fire func(intended time.Time), flush func()) int {
	c := &timerClock{timer: time.NewTimer(time.Hour)}
	defer c.timer.Stop()
	return runBatched(ctx, s, start, d, fire, flush, c)
}

// clock is what runBatched needs of time: the wall clock (timerClock), or a test's.
type clock interface {
	until(t time.Time) time.Duration
	// sleep waits d; false when ctx ended first.
	sleep(ctx context.Context, d time.Duration) bool
}

type timerClock struct{ timer *time.Timer }

func (timerClock) until(t time.Time) time.Duration { return time.Until(t) }

func (c *timerClock) sleep(ctx context.Context, d time.Duration) bool {
	c.timer.Reset(d)
	select {
	case <-ctx.Done():
		return false
	case <-c.timer.C:
		return true
	}
}

func runBatched(ctx context.Context, s *Schedule, start time.Time, d time.Duration, fire func(intended time.Time), flush func(), c clock) int {
	if flush == nil {
		flush = func() {}
	}
	defer flush()
	n, queued := 0, 0
	for {
		off := s.Next()
		if off >= d {
			return n
		}
		at := start.Add(off)
		if c.until(at) > 0 || queued >= maxBatch {
			flush()
			queued = 0
		}
		if wait := c.until(at); wait > 0 { // after the flush, which takes time too
			// Sleeping below a timer's real resolution only adds jitter; fire slightly early
			// in that case (intended time is still recorded exactly).
			if wait > 200*time.Microsecond && !c.sleep(ctx, wait) {
				return n
			}
		} else if ctx.Err() != nil {
			return n
		}
		fire(at)
		n++
		queued++
	}
}
