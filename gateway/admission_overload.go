package gateway

import (
	"math"
	"time"
)

// Sustained overload (issue 19; docs/operations.md, "Overload").
//
// The latency baseline rises towards higher window averages (nextBaseline), so that a
// backend that became slower for good is accepted as it is. Past capacity that is wrong:
// the latency of what is admitted is a queue the gateway itself stands in front of, and a
// baseline that follows it lets the limit follow too (128 to 400-500 in flight within a
// minute at 3x capacity, and latency with it). So while the gateway refuses for good, a
// share of its requests smoothed over windows, the baseline only drops. A backend that
// does become slower meanwhile is learnt by a probe, as Envoy's adaptive concurrency
// measures its minRTT: a second into the overload, and every probeEvery after, the limit drops to probeLimit for
// probeWindows windows; the first drains what was in flight, the lowest average of the
// rest is the backend's latency with no queue in front of it, and becomes the baseline.
const (
	// overloadShare is the smoothed share of refused requests over which the gateway is
	// overloaded: at 1.5x its capacity a third are refused, a clipped burst far fewer.
	overloadShare = 0.1
	// shareSmoothing is a window's weight in the smoothed share: 3x capacity (two thirds
	// refused) counts as overloaded after one window; after it the share falls under
	// overloadShare in about half a second.
	shareSmoothing = 0.3
	// probeFirst: a gateway that starts past its capacity never saw its baseline, nor
	// one whose backend became slower just as the load came; then every probeEvery.
	probeFirst   = time.Second
	probeEvery   = 10 * time.Second
	probeWindows = 3
	probeLimit   = 16
)

// sustained is whether the gateway refuses for good, and its baseline probes. Guarded by
// admission.mu.
type sustained struct {
	share                    float64 // smoothed share of refused requests
	refusedSeen, decidedSeen uint64
	since                    int64 // ns since admission.base when the overload began, or its last probe ended; 0: not overloaded
	probed                   bool  // a probe ran in this overload
	probeLeft                int   // windows of a probe under way
	probeSaved, probeBest    float64
}

// refusedShare is the share of the requests decided since the last window's close that
// were refused. Called under mu.
func (a *admission) refusedShare() float64 {
	var refused uint64
	for r := refusedLimit; r < nRefusals; r++ {
		refused += a.counts[r].Load()
	}
	decided := refused + a.counts[admitted].Load()
	s := &a.sustained
	dr, dd := refused-s.refusedSeen, decided-s.decidedSeen
	s.refusedSeen, s.decidedSeen = refused, decided
	if dd == 0 {
		return 0
	}
	return float64(dr) / float64(dd)
}

// update takes a window that closed at t with the given share refused, and reports
// whether the gateway is overloaded.
func (s *sustained) update(t int64, share float64) bool {
	s.share += (share - s.share) * shareSmoothing
	if s.share <= overloadShare {
		s.since, s.probed = 0, false
		return false
	}
	if s.since == 0 {
		s.since = t
	}
	return true
}

// probe runs the baseline probes at the close of a window at t whose average latency was
// lat (when hasLat), over saying whether the gateway is overloaded. It reports whether a
// probe is under way: the window moves the limit no other way. A probe window that finds
// the overload gone ends the probe at once, the limit given back: the low limit would
// only refuse what the gateway now has room for. Called under mu.
func (a *admission) probe(t int64, lat float64, hasLat, over bool) bool {
	s := &a.sustained
	if s.probeLeft > 0 {
		s.probeLeft--
		if s.probeLeft < probeWindows-1 && hasLat {
			s.probeBest = min(s.probeBest, lat)
		}
		if s.probeLeft == 0 || !over {
			s.probeLeft = 0
			if !math.IsInf(s.probeBest, 1) {
				a.baseLat.Store(int64(s.probeBest))
			}
			a.est = s.probeSaved
			a.limit.Store(int64(a.est))
			if over {
				s.since = t // the next probe is probeEvery from this one
			}
		}
		return true
	}
	every := probeFirst
	if s.probed {
		every = probeEvery
	}
	if !over || t-s.since < int64(every) {
		return false
	}
	a.probes.Add(1)
	s.probed = true
	s.probeLeft, s.probeSaved, s.probeBest = probeWindows, a.est, math.Inf(1)
	a.limit.Store(min(probeLimit, int64(a.est)))
	return true
}
