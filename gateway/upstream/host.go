package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// host is one backend address of a cluster. The hot path (pick, begin, end) touches only
// atomics; the mutex guards the ejection state, which changes rarely.
type host struct {
	name  string     // as configured, e.g. "10.0.0.5:8080" or "@demo"
	addr  string     // the address dialed
	base  string     // "http://" + addr
	pool  *h1Pool    // Call's and Forward's connections
	async *asyncPool // CallAsync's, on the reactor; nil without Options.Engine

	healthy  atomic.Bool  // active health checks; starts true
	ejected  atomic.Bool  // passive outlier ejection
	inFlight atomic.Int64 // requests between begin and end
	requests atomic.Uint64
	failures atomic.Uint64
	// consecutive counts failures since the last success, for outlier ejection.
	consecutive atomic.Int64

	mu           sync.Mutex
	ejectedUntil time.Time
	ejections    uint64
	ejectTimer   *time.Timer

	m hostMetrics
}

func (h *host) available() bool { return h.healthy.Load() && !h.ejected.Load() }

// HostStatus is a snapshot of one host for the admin API.
type HostStatus struct {
	Name         string    `json:"name"`    // as configured
	Address      string    `json:"address"` // as dialed
	Healthy      bool      `json:"healthy"` // passing active health checks (true without checks)
	Ejected      bool      `json:"ejected"`
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	Ejections    uint64    `json:"ejections"`
	InFlight     int64     `json:"in_flight"`
	Requests     uint64    `json:"requests"`
	Failures     uint64    `json:"failures"`
}

func (h *host) status() HostStatus {
	s := HostStatus{
		Name:     h.name,
		Address:  h.addr,
		Healthy:  h.healthy.Load(),
		Ejected:  h.ejected.Load(),
		InFlight: h.inFlight.Load(),
		Requests: h.requests.Load(),
		Failures: h.failures.Load(),
	}
	h.mu.Lock()
	if s.Ejected {
		s.EjectedUntil = h.ejectedUntil
	}
	s.Ejections = h.ejections
	h.mu.Unlock()
	return s
}
