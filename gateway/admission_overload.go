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
// measures its minRTT: the limit drops to probeLimit for probeWindows windows, and the
// lowest average latency of them, the backend's with no queue in front of it, becomes the
// baseline. A baseline seen lately needs no probe: in an overload of a few seconds none
// comes, and the probe's refusals cost nothing.
const (
	// overloadShare is the smoothed share of refused requests over which the gateway is
	// overloaded: at 1.5x its capacity a third are refused, a clipped burst far fewer.
	overloadShare = 0.1
	// shareSmoothing is a window's weight in the smoothed share: 3x capacity (two thirds
	// refused) counts as overloaded after one window; after it the share falls under
	// overloadShare in about half a second.
	shareSmoothing = 0.3
	// A probe comes when the baseline was last seen (a window not overloaded, or a
	// probe) probeEvery ago, or never: then probeFirst into the overload, for a gateway
	// that started past its capacity. Its first window drains what was in flight (a few
	// milliseconds at the floor); the lowest average of its windows is the baseline.
	probeFirst   = time.Second
	probeEvery   = 10 * time.Second
	probeWindows = 2
	probeLimit   = 16
)

// sustained is whether the gateway refuses for good, and its baseline probes. Guarded by
// admission.mu.
type sustained struct {
	share                    float64 // smoothed share of refused requests
	last                     float64 // the last window's share
	refusedSeen, decidedSeen uint64
	since                    int64 // ns since admission.base when the overload began; 0: not overloaded
	seen                     int64 // when the baseline was last seen: a window not overloaded, or a probe's end; 0: never
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
	s.last = share
	if s.share <= overloadShare {
		s.since, s.seen = 0, t
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
		if hasLat {
			s.probeBest = min(s.probeBest, lat)
		}
		if s.probeLeft == 0 || !over {
			s.probeLeft = 0
			if !math.IsInf(s.probeBest, 1) {
				a.baseLat.Store(int64(s.probeBest))
			}
			a.est = s.probeSaved
			a.limit.Store(int64(a.est))
			s.seen = t
		}
		return true
	}
	// Not in a window that refused little: the smoothed share lags the load's end by half
	// a second, and a probe then would refuse what the gateway has room for.
	if !over || s.last <= overloadShare || t-s.since < int64(probeFirst) || s.seen != 0 && t-s.seen < int64(probeEvery) {
		return false
	}
	a.m.probes.Inc()
	s.probeLeft, s.probeSaved, s.probeBest = probeWindows, a.est, math.Inf(1)
	a.limit.Store(min(probeLimit, int64(a.est)))
	return true
}
