package openloop

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"
)

func TestConstantScheduleIsExact(t *testing.T) {
	s, err := NewSchedule(Constant, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5000; i++ {
		if got, want := s.Next(), time.Duration(i)*time.Millisecond; got != want {
			t.Fatalf("arrival %d at %v, want %v", i, got, want)
		}
	}
	// A rate whose gap is not a whole number of nanoseconds must not drift.
	s, _ = NewSchedule(Constant, 3, 1)
	var last time.Duration
	for i := 0; i < 3*3600; i++ {
		last = s.Next()
	}
	if want := time.Hour - time.Second/3; (last - want).Abs() > time.Microsecond {
		t.Fatalf("after an hour at 3/s: %v, want %v", last, want)
	}
}

func TestPoissonMeanAndVariance(t *testing.T) {
	const rate, n = 2000.0, 200000
	s, _ := NewSchedule(Poisson, rate, 42)
	var prev time.Duration
	var sum, sumSq float64
	for i := 0; i < n; i++ {
		at := s.Next()
		if at < prev {
			t.Fatalf("arrival %d goes back in time", i)
		}
		g := float64(at-prev) / 1e9
		sum += g
		sumSq += g * g
		prev = at
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	// Exponential gaps: mean = sd = 1/rate. With 200k samples the sample mean's standard
	// error is 0.22%; allow 2%.
	if math.Abs(mean*rate-1) > 0.02 || math.Abs(sd*rate-1) > 0.02 {
		t.Fatalf("gap mean %.6fs sd %.6fs, want both %.6fs", mean, sd, 1/rate)
	}
	// Same seed, same arrivals.
	a, _ := NewSchedule(Poisson, rate, 7)
	b, _ := NewSchedule(Poisson, rate, 7)
	for i := 0; i < 100; i++ {
		if a.Next() != b.Next() {
			t.Fatal("schedule not deterministic for a seed")
		}
	}
}

func TestBadRate(t *testing.T) {
	for _, r := range []float64{0, -1, math.NaN(), math.Inf(1), 2e6} {
		if _, err := NewSchedule(Constant, r, 1); err == nil {
			t.Errorf("rate %v accepted", r)
		}
	}
	if _, err := ParseArrival("bursty"); err == nil {
		t.Error("bad arrival accepted")
	}
}

// TestRunFiresEveryIntendedTime: open loop means the count depends on the schedule, not on
// how fast fire is. A fire that stalls 50ms once must not lose the requests meant for that
// time; they go late with their own intended stamps.
func TestRunFiresEveryIntendedTime(t *testing.T) {
	s, _ := NewSchedule(Constant, 2000, 1)
	start := time.Now()
	var intended []time.Time
	stalled := false
	n := Run(context.Background(), s, start, 300*time.Millisecond, func(at time.Time) {
		intended = append(intended, at)
		if !stalled && at.Sub(start) >= 100*time.Millisecond {
			stalled = true
			time.Sleep(50 * time.Millisecond)
		}
	})
	if n != 600 || len(intended) != 600 {
		t.Fatalf("fired %d (%d), want exactly 600 = 2000/s * 0.3s", n, len(intended))
	}
	for i, at := range intended {
		if want := start.Add(time.Duration(i) * 500 * time.Microsecond); !at.Equal(want) {
			t.Fatalf("request %d intended %v after start, want %v", i, at.Sub(start), want.Sub(start))
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	s, _ := NewSchedule(Constant, 100, 1)
	ctx, cancel := context.WithCancel(context.Background())
	n := Run(ctx, s, time.Now(), time.Hour, func(time.Time) {
		if s.next > 5e8 {
			cancel()
		}
	})
	if n < 50 || n > 52 {
		t.Fatalf("fired %d before cancel, want about 51", n)
	}
}

// fakeClock is a clock whose time moves only by sleep and by advance; onSleep sees each
// sleep. It makes the batching tests independent of how the box schedules them.
type fakeClock struct {
	now     time.Time
	sleeps  int
	onSleep func()
}

func (c *fakeClock) until(t time.Time) time.Duration { return t.Sub(c.now) }

func (c *fakeClock) sleep(_ context.Context, d time.Duration) bool {
	c.sleeps++
	if c.onSleep != nil {
		c.onSleep()
	}
	c.now = c.now.Add(d)
	return true
}

// TestRunBatchedFlushes: on schedule every send is flushed before the loop waits; after
// a stall the late sends are fired together and flushed once, with their intended times
// unchanged, and nothing is left unflushed at the end.
func TestRunBatchedFlushes(t *testing.T) {
	s, _ := NewSchedule(Constant, 2000, 1)
	start := time.Now()
	clk := &fakeClock{now: start}
	var batches []int
	queued, fired := 0, 0
	stalled := false
	clk.onSleep = func() {
		if queued > 0 {
			t.Fatalf("after send %d: the loop waits with %d sends not flushed", fired, queued)
		}
	}
	n := runBatched(context.Background(), s, start, 300*time.Millisecond, func(at time.Time) {
		if want := start.Add(time.Duration(fired) * 500 * time.Microsecond); !at.Equal(want) {
			t.Fatalf("send %d intended %v after start, want %v", fired, at.Sub(start), want.Sub(start))
		}
		fired++
		queued++
		if !stalled && at.Sub(start) >= 100*time.Millisecond {
			stalled = true
			clk.now = clk.now.Add(50 * time.Millisecond) // 100 sends fall due meanwhile
		}
	}, func() {
		if queued > 0 {
			batches = append(batches, queued)
		}
		queued = 0
	}, clk)
	if n != 600 || fired != 600 || queued != 0 {
		t.Fatalf("fired %d (%d), %d left unflushed; want 600 and none", n, fired, queued)
	}
	if biggest := slices.Max(batches); biggest < 100 {
		t.Errorf("largest batch %d after a 50 ms stall at 2000/s, want the 100 late sends together", biggest)
	}
	if clk.sleeps < 400 {
		t.Errorf("%d sleeps, want one before each send on schedule (about 500)", clk.sleeps)
	}
}

// TestRunBatchedBoundsABatch: far behind, sends are flushed every maxBatch.
func TestRunBatchedBoundsABatch(t *testing.T) {
	s, _ := NewSchedule(Constant, 100000, 1)
	start := time.Now()
	clk := &fakeClock{now: start}
	var batches []int
	queued, stalled := 0, false
	runBatched(context.Background(), s, start, 100*time.Millisecond, func(time.Time) {
		queued++
		if !stalled {
			stalled = true
			clk.now = clk.now.Add(70 * time.Millisecond) // 7,000 sends fall due
		}
	}, func() {
		if queued > 0 {
			batches = append(batches, queued)
		}
		queued = 0
	}, clk)
	if biggest := slices.Max(batches); biggest != maxBatch {
		t.Errorf("largest batch %d, want exactly %d (7,000 late sends, flushed every %d)", biggest, maxBatch, maxBatch)
	}
}
