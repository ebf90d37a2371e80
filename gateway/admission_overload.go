package gateway

import "time"

// Sustained overload (issue 19; docs/operations.md, "Overload").
//
// The latency baseline rises towards higher window averages (nextBaseline), so that a
// backend that became slower for good is accepted as it is. Past capacity that is wrong:
// the latency of what is admitted is a queue the gateway itself stands in front of, and a
// baseline that follows it lets the limit follow too (128 to 400-500 in flight within a
// minute at 3x capacity, and latency with it). So while the gateway refuses for good, a
// share of its requests smoothed over windows, the baseline only drops. A backend that
// does become slower meanwhile is learnt by a probe, as Envoy's adaptive concurrency
// measures its minRTT: the limit drops to probeLimit; once what was in flight has
// drained to about that, the average latency of the next window, the backend's with no
// queue in front of it, becomes the baseline. A baseline seen lately needs no probe: in
// an overload of a few seconds none comes, and the probe's refusals cost nothing.
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
	// that started past its capacity. It measures the first window that began with what
	// was in flight drained to about probeLimit (the second at the floor of 128 and
	// sub-millisecond backends: 200 ms in all); a slow backend's queue may take longer to
	// drain, and after probeMaxWait windows the probe gives up, the baseline unchanged.
	probeFirst   = time.Second
	probeEvery   = 10 * time.Second
	probeMaxWait = 10
	probeLimit   = 16
	// staleAfter: a window that closes this long after the last (the traffic stopped)
	// starts afresh: not overloaded, no probe under way.
	staleAfter = time.Second
)

// sustained is whether the gateway refuses for good, and its baseline probes. Guarded by
// admission.mu.
type sustained struct {
	share                    float64 // smoothed share of refused requests
	last                     float64 // the last window's share
	refusedSeen, decidedSeen uint64
	since                    int64 // ns since admission.base when the overload began; 0: not overloaded
	seen                     int64 // when the baseline was last seen: a window not overloaded, or a probe's end; 0: never
	probing                  bool  // a probe is under way
	probeWaited              int   // windows it waited for the drain
	drained                  bool  // in flight was down to about probeLimit at the last close
}

// refusedShare is the share of the requests decided since the last window's close that
// were refused. Those shed after their admission (queue, deadline, pool) count among the
// admitted too: the denominator is each request once. Called under mu.
func (a *admission) refusedShare() float64 {
	var refused uint64
	for r := refusedLimit; r < nRefusals; r++ {
		refused += a.counts[r].Load()
	}
	decided := a.counts[admitted].Load() + a.counts[refusedLimit].Load() + a.counts[refusedConn].Load()
	s := &a.sustained
	dr, dd := refused-s.refusedSeen, decided-s.decidedSeen
	s.refusedSeen, s.decidedSeen = refused, decided
	if dd == 0 {
		return 0
	}
	return min(1, float64(dr)/float64(dd))
}

// isOverloaded is overloaded as the stats show it: a gateway whose traffic stopped
// closes no window, and would say so forever.
func (a *admission) isOverloaded() bool {
	return a.overloaded.Load() && int64(time.Since(a.base))-a.lastRefused.Load() <= int64(staleAfter)
}

// idleReset forgets the overload and any probe after a pause in the traffic: what comes
// next is measured afresh. Called under mu.
func (a *admission) idleReset(t int64) {
	s := &a.sustained
	if s.probing {
		a.endProbe(t)
	}
	s.share, s.since = 0, 0 // the window's close goes on from there (update)
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
// probe is under way: the window moves the limit no other way. Called under mu.
func (a *admission) probe(t int64, lat float64, hasLat, over bool) bool {
	s := &a.sustained
	if s.probing {
		switch {
		case s.drained && hasLat:
			a.baseLat.Store(int64(lat))
			a.endProbe(t)
			return true
		case !s.drained:
			s.probeWaited++
		}
		if s.probeWaited >= probeMaxWait {
			a.endProbe(t)
			return true
		}
		s.drained = a.drainedForProbe()
		return true
	}
	// Not in a window that refused little: the smoothed share lags the load's end by half
	// a second, and a probe then would refuse what the gateway has room for.
	if !over || s.last <= overloadShare || t-s.since < int64(probeFirst) || s.seen != 0 && t-s.seen < int64(probeEvery) {
		return false
	}
	a.m.probes.Inc()
	s.probing, s.probeWaited, s.drained = true, 0, a.drainedForProbe()
	a.limit.Store(min(probeLimit, int64(a.est)))
	return true
}

// drainedForProbe: what is in flight is down to about a probe's limit, so a window from
// now measures latency with no queue in front of the backend.
func (a *admission) drainedForProbe() bool { return a.inFlight.Load() <= probeLimit+probeLimit/4 }

// endProbe gives the limit back. Called under mu.
func (a *admission) endProbe(t int64) {
	s := &a.sustained
	s.probing = false
	a.limit.Store(int64(a.est)) // est is not moved during a probe
	s.seen = t
}
