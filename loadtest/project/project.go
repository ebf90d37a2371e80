// Package project fits memory against connection count and extrapolates it. When a box's
// limits stop a run below the target N, the harness measures RSS at several counts on the
// way up, fits a line (least squares), and states the slope per connection and the value at
// N, always labelled as a projection, never as a measurement.
package project

import (
	"errors"
	"fmt"
	"math"
)

// Point is one measurement: Y (bytes) observed at X (connections).
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Fit is the least-squares line Y = Intercept + Slope*X through the points.
type Fit struct {
	Slope     float64 `json:"slope"`     // bytes per connection
	Intercept float64 `json:"intercept"` // bytes at zero connections
	R2        float64 `json:"r2"`        // coefficient of determination; 1 is a perfect line
	N         int     `json:"n"`         // points used
	MinX      float64 `json:"min_x"`
	MaxX      float64 `json:"max_x"`
}

// ErrTooFew is returned when the points cannot define a line.
var ErrTooFew = errors.New("projection needs at least two points at different connection counts")

// LeastSquares fits a line through pts. NaN or infinite values are an error (they mean a
// stats read failed and must not be silently dropped).
func LeastSquares(pts []Point) (Fit, error) {
	if len(pts) < 2 {
		return Fit{}, ErrTooFew
	}
	var sx, sy float64
	f := Fit{N: len(pts), MinX: math.Inf(1), MaxX: math.Inf(-1)}
	for i, p := range pts {
		if !finite(p.X) || !finite(p.Y) {
			return Fit{}, fmt.Errorf("point %d (%v, %v): not a finite number", i, p.X, p.Y)
		}
		sx += p.X
		sy += p.Y
		f.MinX = math.Min(f.MinX, p.X)
		f.MaxX = math.Max(f.MaxX, p.X)
	}
	n := float64(len(pts))
	mx, my := sx/n, sy/n
	// Centred sums: numerically stable when X is large (100k) and the spread small.
	var sxx, sxy, syy float64
	for _, p := range pts {
		dx, dy := p.X-mx, p.Y-my
		sxx += dx * dx
		sxy += dx * dy
		syy += dy * dy
	}
	if sxx == 0 {
		return Fit{}, ErrTooFew
	}
	f.Slope = sxy / sxx
	f.Intercept = my - f.Slope*mx
	if syy == 0 {
		f.R2 = 1
	} else {
		f.R2 = (sxy * sxy) / (sxx * syy)
	}
	return f, nil
}

// At returns the fitted Y at x.
func (f Fit) At(x float64) float64 { return f.Intercept + f.Slope*x }

// Projection is the fitted value at a target beyond (or within) what was measured.
type Projection struct {
	Fit
	Target float64 `json:"target"` // connections projected to
	Value  float64 `json:"value"`  // projected bytes at Target
	// Extrapolated is true when Target lies outside the measured range: the figure is then
	// a projection, and reports must say so.
	Extrapolated bool `json:"extrapolated"`
	// Factor is Target / MaxX: how far past the measurements the line is carried.
	Factor float64 `json:"factor"`
}

// To projects the fit to target connections.
func (f Fit) To(target float64) Projection {
	p := Projection{Fit: f, Target: target, Value: f.At(target)}
	p.Extrapolated = target > f.MaxX || target < f.MinX
	if f.MaxX > 0 {
		p.Factor = target / f.MaxX
	}
	return p
}

// String states the projection plainly, marking extrapolation.
func (p Projection) String() string {
	kind := "measured range"
	if p.Extrapolated {
		kind = fmt.Sprintf("PROJECTION, %.1fx beyond the largest measured count", p.Factor)
	}
	return fmt.Sprintf("%.0f B/conn (R²=%.3f over %d points, %.0f-%.0f conns) -> %s at %.0f conns (%s)",
		p.Slope, p.R2, p.N, p.MinX, p.MaxX, HumanBytes(p.Value), p.Target, kind)
}

// HumanBytes formats bytes with a binary unit, e.g. "2.5 GiB".
func HumanBytes(b float64) string {
	neg := b < 0
	if neg {
		b = -b
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f %s", b, units[i])
	if i == 0 {
		s = fmt.Sprintf("%.0f B", b)
	}
	if neg {
		return "-" + s
	}
	return s
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
