//go:build linux

package netpoll

// overBudgetLocked says whether the engine is over a budget this connection grows: the
// queued one while it has queued writes, the pending one while it keeps an incomplete
// frame. Reading such a connection would only grow the sum, so it waits; the sweeper
// serves it again once the engine is back under (enforceBudgets).
func (c *econn) overBudgetLocked() bool {
	e := c.eng()
	if c.wq != nil && over(e.ctr.queuedBytes.Load(), e.cfg.QueuedBudget) > 0 ||
		c.pendSince.Load() != 0 && over(e.ctr.pendingBytes.Load(), e.cfg.PendingBudget) > 0 {
		e.budgetStopped.Store(true)
		return true
	}
	return false
}

// enforceBudgets runs on the sweeper each tick. Over a budget, it closes the largest
// holders first until the sum is back under; once under, it hands back to workers the
// connections that were stopped for a budget meanwhile, since the edges they were owed
// would otherwise never be served (nothing else happens to them).
func (e *epollEngine) enforceBudgets() {
	qx := over(e.ctr.queuedBytes.Load(), e.cfg.QueuedBudget)
	px := over(e.ctr.pendingBytes.Load(), e.cfg.PendingBudget)
	if qx > 0 || px > 0 {
		var qs, ps []holder[*econn]
		e.table.each(func(c *econn) bool {
			c.mu.Lock()
			if !c.closed && c.opened {
				if n := c.queuedLocked(); n > 0 && qx > 0 {
					qs = append(qs, holder[*econn]{c, int64(n)})
				}
				// pend belongs to the owner while busy; unowned, it is stable under mu.
				if !c.busy && c.pend != nil && px > 0 {
					ps = append(ps, holder[*econn]{c, int64(len(c.pend.B))})
				}
			}
			c.mu.Unlock()
			return true
		})
		for _, c := range heaviest(qs, qx) {
			c.CloseWithReason(ReasonQueuedBudget)
		}
		for _, c := range heaviest(ps, px) {
			c.CloseWithReason(ReasonPendingBudget)
		}
	}
	if over(e.ctr.queuedBytes.Load(), e.cfg.QueuedBudget) > 0 ||
		over(e.ctr.pendingBytes.Load(), e.cfg.PendingBudget) > 0 ||
		!e.budgetStopped.CompareAndSwap(true, false) {
		return
	}
	// Cleared before the walk: a connection stopped again after this sets it anew and
	// is served at a later tick.
	e.table.each(func(c *econn) bool {
		c.mu.Lock()
		if !c.closed && (c.redeliverNowLocked() || c.takeLocked()) {
			c.readyAt.Store(e.micros()) // held back by the budget until now, not by the reactor
			c.mu.Unlock()
			e.dispatch(c)
			return true
		}
		c.mu.Unlock()
		return true
	})
}
