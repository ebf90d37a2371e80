// Package openloop drives requests at a fixed schedule of intended send times, whatever the
// target does. A closed-loop client (send, wait, send) slows down when the server stalls and
// so never measures the stall: coordinated omission. Here the schedule is computed in
// advance from the rate alone, each request carries its intended time, and latency is
// measured from that time, so a stall shows up as latency of every request it delayed.
package openloop

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Arrival is the shape of the gaps between intended send times.
type Arrival uint8

const (
	// Constant spaces requests exactly 1/rate apart.
	Constant Arrival = iota + 1
	// Poisson draws exponential gaps with mean 1/rate: independent users arriving at random.
	Poisson
)

// ParseArrival reads "constant" or "poisson".
func ParseArrival(s string) (Arrival, error) {
	switch s {
	case "constant", "":
		return Constant, nil
	case "poisson":
		return Poisson, nil
	}
	return 0, fmt.Errorf("arrival %q: want constant or poisson", s)
}

func (a Arrival) String() string {
	switch a {
	case Constant:
		return "constant"
	case Poisson:
		return "poisson"
	}
	return "unknown"
}

// MaxRate bounds the rate one schedule drives; above it the timer loop itself would be the
// bottleneck on a small box, and a mistyped rate should fail loudly instead.
const MaxRate = 1e6

// Schedule yields intended send offsets from the start of a run. It is deterministic for a
// seed, so a test (or a rerun) sees the same arrivals. Not safe for concurrent use.
type Schedule struct {
	arrival Arrival
	gap     float64 // mean gap in nanoseconds
	next    float64 // next offset in nanoseconds, kept as float so gaps do not round away
	rng     *rand.Rand
}

// NewSchedule returns a schedule of rate requests per second.
func NewSchedule(a Arrival, rate float64, seed uint64) (*Schedule, error) {
	if math.IsNaN(rate) || rate <= 0 || rate > MaxRate {
		return nil, fmt.Errorf("rate %v: want 0 < rate <= %v requests/s", rate, MaxRate)
	}
	if a != Constant && a != Poisson {
		return nil, fmt.Errorf("arrival %d: unknown", a)
	}
	s := &Schedule{arrival: a, gap: 1e9 / rate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if a == Poisson {
		s.next = s.rng.ExpFloat64() * s.gap
	}
	return s, nil
}

// Next returns the offset of the next intended send and advances.
func (s *Schedule) Next() time.Duration {
	at := s.next
	if s.arrival == Poisson {
		s.next += s.rng.ExpFloat64() * s.gap
	} else {
		s.next += s.gap
	}
	return time.Duration(at)
}
