package netpoll

import (
	"slices"
	"time"
)

// holder is a connection holding n bytes of a budgeted kind (queued or pending).
type holder[C any] struct {
	c C
	n int64
}

// heaviest picks the holders to close so that a sum excess bytes over its budget falls
// back under: the largest first, since each close then frees the most and the fewest
// connections pay. Holders are sorted in place.
func heaviest[C any](hs []holder[C], excess int64) []C {
	slices.SortFunc(hs, func(a, b holder[C]) int {
		switch {
		case a.n > b.n:
			return -1
		case a.n < b.n:
			return 1
		}
		return 0
	})
	var out []C
	for _, h := range hs {
		if excess <= 0 {
			break
		}
		out = append(out, h.c)
		excess -= h.n
	}
	return out
}

// over reports by how much sum exceeds budget (0 when under, or the budget is off).
func over(sum, budget int64) int64 {
	if budget <= 0 || sum <= budget {
		return 0
	}
	return sum - budget
}

// budgetLoop is the rwloop engine's budget enforcement: each tick over a budget it closes
// the largest holders first. rwloop does not stop reading for a budget (a read loop
// blocked in a read cannot be told to wait); its per-connection limits still apply.
func (e *rwEngine) budgetLoop(stop <-chan struct{}) {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.TimerTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		qx := over(e.ctr.queuedBytes.Load(), e.cfg.QueuedBudget)
		px := over(e.ctr.pendingBytes.Load(), e.cfg.PendingBudget)
		if qx == 0 && px == 0 {
			continue
		}
		var qs, ps []holder[*rwConn]
		e.mu.Lock()
		for c := range e.conns {
			if n := c.pendN.Load(); n > 0 && px > 0 {
				ps = append(ps, holder[*rwConn]{c, n})
			}
			if qx > 0 {
				c.mu.Lock()
				if n := c.queued; n > 0 && !c.closed {
					qs = append(qs, holder[*rwConn]{c, int64(n)})
				}
				c.mu.Unlock()
			}
		}
		e.mu.Unlock()
		for _, c := range heaviest(qs, qx) {
			c.CloseWithReason(ReasonQueuedBudget)
		}
		for _, c := range heaviest(ps, px) {
			c.CloseWithReason(ReasonPendingBudget)
		}
	}
}
