package clock

import (
	"testing"
	"time"
)

func TestFromMeasuresLikeNow(t *testing.T) {
	base := time.Now()
	time.Sleep(5 * time.Millisecond)
	before := time.Now()
	got := From(base)
	after := time.Now()
	if got.Before(before) || got.After(after) {
		t.Fatalf("From(base) = %v, not between %v and %v (monotonic order)", got, before, after)
	}
	if d := got.Sub(base); d < 5*time.Millisecond {
		t.Fatalf("From(base) - base = %v, want >= 5ms slept", d)
	}
	// A wall-only time (no monotonic reading) still gives a time, not base.
	if w := From(base.Round(0)); w.Before(before) {
		t.Fatalf("From(wall-only base) = %v, before %v", w, before)
	}
	if z := From(time.Time{}); z.Before(before) {
		t.Fatalf("From(zero) = %v, want now", z)
	}
}
