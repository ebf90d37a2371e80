package gateway

import (
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// closeTestWindow closes one admission window whose answers took lat, in which the limit
// bound, 100 requests were admitted and `refused` more were refused.
func closeTestWindow(a *admission, lat time.Duration, refused int) {
	closeTestWindowAfter(a, admissionWindow, lat, refused)
}

// closeTestWindowAfter is closeTestWindow for a window that closes d after the last.
func closeTestWindowAfter(a *admission, d, lat time.Duration, refused int) {
	for range refused {
		a.refuse(refusedLimit)
	}
	a.counts[admitted].Add(100)
	for range admissionMinSamples {
		a.winLat.Add(int64(lat))
		a.winLatN.Add(1)
	}
	a.winPeak.Store(a.limit.Load())
	a.mu.Lock()
	a.closeWindow(a.winStart.Load() + int64(d))
	a.mu.Unlock()
}

func newTestAdmission(minLimit int) *admission {
	cfg := config.Admission{MinLimit: minLimit, MaxLimit: 10000, QueueTarget: config.Duration(2 * time.Millisecond)}
	return newAdmission(cfg, 10000, newAdmissionMetrics(metrics.NewSet()))
}

// TestAdmissionBaselineUnderOverload: while the gateway refuses for good, a latency that
// grew is a queue it stands in, not a slower backend: the baseline does not follow it (it
// did, half the gap in 14 s, and the limit climbed with it: 128 to 400-500 in flight and
// p50 three times longer over a minute at 3x capacity). When the baseline was last seen
// 10 s ago, or never (a gateway that starts past capacity: a second in), a probe drops
// the limit to 16 for two windows and takes the latency with the queue drained as the
// baseline, so a baseline that was too low (one window of cached answers) or a backend
// that became slower meanwhile is learnt, and the limit is given back.
func TestAdmissionBaselineUnderOverload(t *testing.T) {
	base := func(a *admission) time.Duration { return time.Duration(a.baseLat.Load()) }
	// A queue past capacity: 10 ms in it, 1 ms with no queue (the probe's limit).
	queue := func(a *admission) time.Duration {
		if a.limit.Load() <= probeLimit {
			return time.Millisecond
		}
		return 10 * time.Millisecond
	}
	for _, refused := range []int{0, 1, 100} { // none, a few clipped from a burst, half
		a := newTestAdmission(128)
		closeTestWindow(a, time.Millisecond, 0)
		for range 50 { // 5 s
			closeTestWindow(a, queue(a), refused)
		}
		over := refused == 100
		switch got := base(a); {
		case over && got != time.Millisecond:
			t.Errorf("5 s in a 10 ms queue with half refused: baseline %v, want it held at 1ms", got)
		case !over && got < 2*time.Millisecond:
			t.Errorf("5 s at 10 ms with %d refused a window: baseline %v, want it risen towards 10ms", refused, got)
		}
		if st := a.stats(); st.Overloaded != over || st.Probes != 0 {
			t.Errorf("%d refused a window: stats say overloaded %v after %d probes; want %v, no probe (the baseline was seen 5 s ago)",
				refused, st.Overloaded, st.Probes, over)
		}
	}

	// Started past capacity: the first windows are all in the queue; the probe a second
	// in finds the baseline under it.
	cold := newTestAdmission(128)
	for range 20 {
		closeTestWindow(cold, queue(cold), 100)
	}
	if got := base(cold); got != time.Millisecond || cold.m.probes.Get() != 1 {
		t.Errorf("2 s past capacity from the start: baseline %v after %d probes, want 1ms after one", got, cold.m.probes.Get())
	}

	// A baseline set too low by one fast window, then a backend answering in 20 ms while
	// the gateway refuses: the probe 10 s after the baseline was seen learns 20 ms.
	a := newTestAdmission(128)
	closeTestWindow(a, 20*time.Millisecond, 0)
	closeTestWindow(a, 50*time.Microsecond, 0)
	for range 99 { // 9.9 s
		closeTestWindow(a, 20*time.Millisecond, 100)
	}
	if got := base(a); got != 50*time.Microsecond || a.m.probes.Get() != 0 {
		t.Fatalf("9.9 s into the overload: baseline %v, %d probes; want 50µs, none", got, a.m.probes.Get())
	}
	const probeWindows = 1 // nothing in flight here: the window after the probe's start is its measure
	before := a.est
	var during []int64
	for range 1 + probeWindows {
		closeTestWindow(a, 20*time.Millisecond, 100)
		during = append(during, a.limit.Load())
	}
	if a.m.probes.Get() != 1 || during[0] != probeLimit || during[probeWindows-1] != probeLimit {
		t.Fatalf("10 s into the overload: %d probes, limits %v; want one probe at %d for %d windows",
			a.m.probes.Get(), during, probeLimit, probeWindows)
	}
	if got := base(a); got != 20*time.Millisecond {
		t.Errorf("after the probe: baseline %v, want the 20ms the backend takes", got)
	}
	if got := during[probeWindows]; got != int64(before) {
		t.Errorf("after the probe: limit %d, want the %d it interrupted", got, int64(before))
	}
	for range 30 { // binding at the backend's latency: the limit grows again
		closeTestWindow(a, 20*time.Millisecond, 100)
	}
	if got := a.limit.Load(); got <= int64(before) {
		t.Errorf("3 s at the learnt baseline: limit %d, want it grown past %d", got, int64(before))
	}
	for range 70 { // the next probe is 10 s after the first
		closeTestWindow(a, 20*time.Millisecond, 100)
	}
	if got := a.m.probes.Get(); got != 2 {
		t.Errorf("10 s after the first probe: %d probes, want 2", got)
	}
}

// TestAdmissionProbeWaitsForTheDrain: a probe counts its window only once what was in
// flight has drained to about its limit: with a slow backend the first windows still
// measure the queue, and a baseline taken from them would be the very queue the probe is
// to see under. A queue that never drains ends the probe, the baseline unchanged.
func TestAdmissionProbeWaitsForTheDrain(t *testing.T) {
	a := newTestAdmission(128)
	a.inFlight.Store(100) // a slow backend's queue
	for range 11 {        // past capacity from the start: the probe comes a second in
		closeTestWindow(a, 300*time.Millisecond, 100)
	}
	if a.m.probes.Get() != 1 || a.limit.Load() != probeLimit {
		t.Fatalf("a second past capacity: %d probes, limit %d; want a probe at %d", a.m.probes.Get(), a.limit.Load(), probeLimit)
	}
	for range 3 {
		closeTestWindow(a, 300*time.Millisecond, 100)
	}
	if a.limit.Load() != probeLimit {
		t.Fatalf("three windows with 100 in flight: limit %d, want the probe's %d still", a.limit.Load(), probeLimit)
	}
	a.inFlight.Store(10)
	closeTestWindow(a, 250*time.Millisecond, 100) // drained by its close, not from its start
	closeTestWindow(a, 20*time.Millisecond, 100)  // the backend with no queue in front
	if got := time.Duration(a.baseLat.Load()); got != 20*time.Millisecond || a.limit.Load() == probeLimit {
		t.Errorf("after the drain: baseline %v, limit %d; want 20ms and the limit back", got, a.limit.Load())
	}

	never := newTestAdmission(128)
	never.inFlight.Store(100)
	for range 11 + probeMaxWait {
		closeTestWindow(never, 300*time.Millisecond, 100)
	}
	if got := time.Duration(never.baseLat.Load()); never.limit.Load() == probeLimit || got != 300*time.Millisecond {
		t.Errorf("a queue that never drained: limit %d, baseline %v; want the limit back and the baseline as it was",
			never.limit.Load(), got)
	}
}

// TestAdmissionAfterAPause: traffic that stops closes no window. The stats stop saying
// overloaded a second after the last refusal, and the first window after the pause
// forgets the overload and ends a probe under way.
func TestAdmissionAfterAPause(t *testing.T) {
	a := newTestAdmission(128)
	for range 11 {
		closeTestWindow(a, 5*time.Millisecond, 100)
	}
	if !a.stats().Overloaded || a.limit.Load() != probeLimit {
		t.Fatalf("a second past capacity: stats overloaded %v, limit %d; want true and a probe", a.stats().Overloaded, a.limit.Load())
	}
	a.lastRefused.Store(int64(time.Since(a.base)) - int64(2*time.Second))
	if a.stats().Overloaded {
		t.Error("2 s after the last refusal: stats still say overloaded")
	}
	closeTestWindowAfter(a, 2*time.Second, time.Millisecond, 0)
	if a.overloaded.Load() || a.limit.Load() == probeLimit {
		t.Errorf("the first window after a 2 s pause: overloaded %v, limit %d; want neither", a.overloaded.Load(), a.limit.Load())
	}
}

// TestAdmissionAbsorbDefersProbes: a hot upgrade's backlog (absorb) is no time to measure
// the baseline: a probe under way ends, and none starts for probeEvery.
func TestAdmissionAbsorbDefersProbes(t *testing.T) {
	a := newTestAdmission(128)
	for range 11 {
		closeTestWindow(a, 5*time.Millisecond, 100)
	}
	if a.m.probes.Get() != 1 {
		t.Fatalf("a second past capacity: %d probes, want 1", a.m.probes.Get())
	}
	a.absorb(2000)
	for range 5 {
		closeTestWindow(a, 5*time.Millisecond, 100)
	}
	if got := a.m.probes.Get(); got != 1 || a.limit.Load() == probeLimit {
		t.Errorf("after absorb, overloaded: %d probes, limit %d; want no second probe", got, a.limit.Load())
	}
}

// TestAdmissionNoProbeAsTheLoadGoes: an overload that ends just as a probe is due (its
// smoothed share still over the mark for half a second) starts none: at half the
// capacity the probe's limit of 16 would refuse what the gateway has room for.
func TestAdmissionNoProbeAsTheLoadGoes(t *testing.T) {
	a := newTestAdmission(128)
	closeTestWindow(a, time.Millisecond, 0) // the baseline seen
	for range 99 {                          // 9.9 s past capacity
		closeTestWindow(a, 5*time.Millisecond, 100)
	}
	for range 5 { // the load went: nothing refused, the smoothed share still falling
		closeTestWindow(a, time.Millisecond, 0)
		if a.m.probes.Get() != 0 || a.limit.Load() == probeLimit {
			t.Fatalf("a window after the overload: %d probes, limit %d; want none", a.m.probes.Get(), a.limit.Load())
		}
	}
}

// TestAdmissionLetsBurstsIn: with nothing refused lately the adaptive limit counts double,
// so a burst of clients that stalled is served, not refused; the first refusal makes it
// strict, as past capacity. A configured limit is the limit.
func TestAdmissionLetsBurstsIn(t *testing.T) {
	a := newTestAdmission(16)
	a.base = a.base.Add(-time.Second) // nothing refused for a second
	burst := func(a *admission) (ok int) {
		for range 100 {
			if a.admit(0) == admitted {
				ok++
			}
		}
		for range ok {
			a.done()
			a.connIdle()
		}
		return ok
	}
	// 100 connections with one request each: twice the limit, then a quarter of that
	// more for connections below their share; the first refusal ends the burst's room.
	if got, want := burst(a), 2*16+2*16/4; got != want {
		t.Errorf("a burst with nothing refused lately: %d admitted at limit 16, want %d", got, want)
	}
	if got, want := burst(a), 16+16/4; got != want {
		t.Errorf("a burst right after refusals: %d admitted at limit 16, want %d", got, want)
	}
	capped := newAdmission(config.Admission{MinLimit: 16, MaxLimit: 20}, 10000, newAdmissionMetrics(metrics.NewSet()))
	capped.base = capped.base.Add(-time.Second)
	if got, want := burst(capped), 20+20/4; got != want {
		t.Errorf("max_limit 20: a burst got %d admitted, want %d (the ceiling holds)", got, want)
	}
	fixed := newAdmission(config.Admission{Limit: 16}, 10000, newAdmissionMetrics(metrics.NewSet()))
	fixed.base = fixed.base.Add(-time.Second)
	if got, want := burst(fixed), 16+16/4; got != want {
		t.Errorf("limit: 16 configured, a burst got %d admitted, want %d", got, want)
	}
}
