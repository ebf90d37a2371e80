//go:build linux

package netpoll

import "time"

// sweeper advances the coarse clock and, each tick, walks the fd table for connections
// whose idle or partial-frame deadline passed, or whose write queue stalled. One goroutine
// and one ticker for the whole engine instead of a timer per connection; the walk touches
// three atomics per connection, about a millisecond per 100k.
func (e *epollEngine) sweeper() {
	defer close(e.sweepDone)
	t := time.NewTicker(e.cfg.TimerTick)
	defer t.Stop()
	for {
		select {
		case <-e.sweepStop:
			return
		case <-t.C:
			e.resetClock()
			now := e.tick.Add(1)
			if now == 0 { // wrapped; 0 means unset
				now = e.tick.Add(1)
			}
			e.sweep(now)
		}
	}
}

// sweep fires the timeouts due at tick now. A stamp taken during tick t may be up to a
// tick old, so a deadline of k ticks fires once more than k ticks passed: never early,
// at most one tick late.
func (e *epollEngine) sweep(now uint32) {
	e.table.each(func(c *econn) bool {
		if idle := c.idleTicks.Load(); idle > 0 {
			if la := c.lastActive.Load(); la != 0 && now-la > idle {
				c.fireTimeout(TimeoutIdle, now)
			}
		}
		if partial := c.own.partialTicks; partial > 0 {
			if ps := c.pendSince.Load(); ps != 0 && now-ps > partial {
				c.fireTimeout(TimeoutPartial, now)
			}
		}
		if stall := c.own.stallTicks; stall > 0 {
			if fa := c.flushedAt.Load(); fa != 0 && now-fa > stall {
				c.closeStalled(fa)
			}
		}
		return true
	})
	e.enforceBudgets()
	e.setFanout()
}

// fireTimeout calls OnTimeout unless a worker owns the connection (it is not idle then).
// OnTimeout never overlaps OnData: nobody takes the connection while it runs (takeLocked),
// and what came meanwhile is taken as it returns. The deadline restarts, so a handler
// that keeps the connection hears again after another period.
func (c *econn) fireTimeout(kind TimeoutKind, now uint32) {
	c.mu.Lock()
	if c.closed || c.busy || c.inTimeout || !c.opened {
		c.mu.Unlock()
		return
	}
	c.inTimeout = true
	c.mu.Unlock()

	ok := callSafely("OnTimeout", c.id, func() { c.own.h.OnTimeout(c, kind) })

	c.mu.Lock()
	c.inTimeout = false
	if !ok {
		c.closeLocked(ReasonHandler)
	}
	if kind == TimeoutIdle {
		c.lastActive.Store(now)
	} else if c.pendSince.Load() != 0 {
		c.pendSince.Store(now)
	}
	// Edges (or a ResumeRead's redelivery) that came during OnTimeout could not be taken
	// then (takeLocked refuses while inTimeout): take them now, or nothing would.
	dispatch := c.redeliverNowLocked() || c.takeLocked()
	c.mu.Unlock()
	if dispatch {
		c.eng().dispatch(c)
	}
	c.finish()
}

// closeStalled closes a connection whose write queue made no progress since tick since:
// its peer stopped reading. The stamp is checked again under the lock, since a flush may
// have written bytes after the sweeper read it. No handler callback: the engine closes by
// itself, as it does at the hard write limit.
func (c *econn) closeStalled(since uint32) {
	c.mu.Lock()
	if c.wq != nil && c.flushedAt.Load() == since {
		c.closeLocked(ReasonWriteStall)
	}
	c.mu.Unlock()
	c.finish()
}
