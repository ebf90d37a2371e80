package upstream

import "math/rand/v2"

// Load-balancing policies (config.Cluster.Policy).
const (
	PolicyRoundRobin    = "round_robin"
	PolicyLeastRequests = "least_requests"
)

// pick returns an available host, or nil when none is. Safe for concurrent use.
func (c *Cluster) pick() *host {
	n := len(c.hosts)
	if n == 1 {
		if h := c.hosts[0]; h.available() {
			return h
		}
		return nil
	}
	if c.leastRequests {
		return c.pickLeast()
	}
	return c.pickRoundRobin()
}

// pickRoundRobin takes the next host in turn, skipping unavailable ones. An unavailable
// host's turns land on its successor; with the handful of hosts a cluster has that skew
// is accepted to keep the pick lock-free and allocation-free.
func (c *Cluster) pickRoundRobin() *host {
	n := uint64(len(c.hosts))
	start := c.rr.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		if h := c.hosts[(start+i)%n]; h.available() {
			return h
		}
	}
	return nil
}

// pickLeast is the power of two choices: two random distinct available hosts, the one
// with fewer requests in flight wins. It avoids the herd that "always the least loaded"
// causes when many pickers see the same counts.
func (c *Cluster) pickLeast() *host {
	n := len(c.hosts)
	// Fast path: two random distinct hosts, both available (the common case).
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := c.hosts[i], c.hosts[j]
	if a.available() && b.available() {
		if b.inFlight.Load() < a.inFlight.Load() {
			return b
		}
		return a
	}
	// Some host is out: choose among the available ones only.
	var buf [16]*host
	avail := buf[:0]
	for _, h := range c.hosts {
		if h.available() {
			avail = append(avail, h)
		}
	}
	switch len(avail) {
	case 0:
		return nil
	case 1:
		return avail[0]
	}
	i = rand.IntN(len(avail))
	j = rand.IntN(len(avail) - 1)
	if j >= i {
		j++
	}
	a, b = avail[i], avail[j]
	if b.inFlight.Load() < a.inFlight.Load() {
		return b
	}
	return a
}
