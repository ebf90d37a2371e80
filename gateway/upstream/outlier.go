package upstream

import "time"

// Passive outlier ejection. What counts as a failure, decided: connect errors, timeouts,
// broken or oversized responses, and backend answers with status >= 500. A backend 5xx
// counts because a host that answers every call with 500/503 is as broken for the caller
// as one that refuses connections (Envoy's consecutive_5xx does the same). Client
// cancellations, Invalid requests and gateway-side refusals (NoHealthyHost, Overloaded)
// never count: they say nothing about the host.
//
// Ejection cap, decided: at most max(1, MaxEjectionPercent% of the hosts) are ejected at
// once. "At least one" means a one-host cluster does get ejected: its calls then fail fast
// with NoHealthyHost, which the router's fallback handles, instead of every call paying a
// connect timeout. The cap keeps a bad backend release (every host 5xx) from emptying a
// bigger cluster.

func isFailure(kind Kind, status int) bool {
	switch kind {
	case 0:
		return status >= 500
	case ConnectFailed, Timeout, Failed:
		return true
	}
	return false
}

// observe feeds one request's outcome to the host's failure streak.
func (c *Cluster) observe(h *host, kind Kind, status int) {
	failed := isFailure(kind, status)
	if failed {
		h.failures.Add(1)
	}
	if c.consecutiveFailures == 0 {
		return
	}
	if !failed {
		if kind == 0 && h.consecutive.Load() != 0 {
			h.consecutive.Store(0)
		}
		return
	}
	if h.consecutive.Add(1) >= c.consecutiveFailures {
		c.eject(h)
	}
}

func (c *Cluster) eject(h *host) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ejected.Load() || c.isClosed() {
		return
	}
	if c.ejectedCount.Add(1) > c.maxEjected {
		c.ejectedCount.Add(-1)
		return
	}
	h.ejected.Store(true)
	h.ejections++
	h.ejectedUntil = time.Now().Add(c.ejectFor)
	h.consecutive.Store(0)
	h.m.ejections.Inc()
	h.ejectTimer = time.AfterFunc(c.ejectFor, func() { c.uneject(h) })
	c.log.Warn("upstream host ejected", "host", h.name, "for", c.ejectFor, "ejections", h.ejections)
}

func (c *Cluster) uneject(h *host) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ejected.Load() {
		return
	}
	h.ejected.Store(false)
	h.ejectTimer = nil
	h.consecutive.Store(0)
	c.ejectedCount.Add(-1)
	c.log.Info("upstream host back from ejection", "host", h.name)
}
