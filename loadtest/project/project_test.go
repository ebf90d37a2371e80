package project

import (
	"math"
	"strings"
	"testing"
)

func TestExactLine(t *testing.T) {
	// 20 MB base plus 600 B per connection, measured at 2k..18k.
	var pts []Point
	for x := 2000.0; x <= 18000; x += 4000 {
		pts = append(pts, Point{x, 20e6 + 600*x})
	}
	f, err := LeastSquares(pts)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(f.Slope-600) > 1e-9 || math.Abs(f.Intercept-20e6) > 1e-3 || math.Abs(f.R2-1) > 1e-12 {
		t.Fatalf("fit %+v", f)
	}
	p := f.To(100000)
	if math.Abs(p.Value-80e6) > 1e-3 || !p.Extrapolated || math.Abs(p.Factor-100000.0/18000) > 1e-12 {
		t.Fatalf("projection %+v", p)
	}
	if s := p.String(); !strings.Contains(s, "PROJECTION") || !strings.Contains(s, "600 B/conn") {
		t.Fatalf("statement %q must say projection and the slope", s)
	}
	if f.To(10000).Extrapolated {
		t.Fatal("a target inside the measured range is not extrapolated")
	}
}

func TestNoisyLineKnownAnswer(t *testing.T) {
	// Hand-computed: x = 1,2,3,4; y = 2,4,5,8 -> slope 1.9, intercept 0, R² = 0.9627...
	f, err := LeastSquares([]Point{{1, 2}, {2, 4}, {3, 5}, {4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(f.Slope-1.9) > 1e-12 || math.Abs(f.Intercept-0) > 1e-12 {
		t.Fatalf("slope %v intercept %v", f.Slope, f.Intercept)
	}
	// SSxy = 9.5, SSxx = 5, SSyy = 18.75 -> R² = 90.25/93.75
	if math.Abs(f.R2-90.25/93.75) > 1e-12 {
		t.Fatalf("R² %v", f.R2)
	}
}

func TestLargeXStable(t *testing.T) {
	// Counts near 1e5 with a tiny spread: naive sums would lose the slope.
	var pts []Point
	for i := 0; i < 10; i++ {
		x := 1e5 + float64(i)
		pts = append(pts, Point{x, 1e9 + 512*x})
	}
	f, err := LeastSquares(pts)
	if err != nil || math.Abs(f.Slope-512) > 1e-6 {
		t.Fatalf("slope %v err %v", f.Slope, err)
	}
}

func TestTooFewOrBad(t *testing.T) {
	if _, err := LeastSquares(nil); err != ErrTooFew {
		t.Fatal("no points accepted")
	}
	if _, err := LeastSquares([]Point{{5, 1}, {5, 2}}); err != ErrTooFew {
		t.Fatal("one distinct x accepted")
	}
	if _, err := LeastSquares([]Point{{1, 1}, {2, math.NaN()}}); err == nil {
		t.Fatal("NaN accepted")
	}
}

func TestHumanBytes(t *testing.T) {
	for in, want := range map[float64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 2.5 * (1 << 30): "2.5 GiB", -2048: "-2.0 KiB"} {
		if got := HumanBytes(in); got != want {
			t.Errorf("HumanBytes(%v) = %q, want %q", in, got, want)
		}
	}
}
