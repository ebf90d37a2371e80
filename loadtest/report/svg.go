package report

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The charts are drawn here as inline SVG so the report opens offline with no script and
// no asset: a line/scatter chart is all the report needs.

// series is one line (or set of dots) on a chart.
type series struct {
	name  string
	color string
	pts   [][2]float64
	dots  bool // draw points only (scatter), no line
	dash  bool
}

type chart struct {
	title, xLabel, yLabel string
	series                []series
	xFmt, yFmt            func(float64) string
	xTicks                []float64 // fixed x ticks; nil picks them
	width, height         int
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"}

const (
	padL, padR, padTop, padB = 70, 20, 30, 45
	legendCols, legendRowH   = 3, 14
)

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

func (c chart) svg() string {
	w, h := c.width, c.height
	if w == 0 {
		w, h = 720, 300
	}
	// The legend sits between the title and the plot, never over the lines.
	legendRows := (len(c.series) + legendCols - 1) / legendCols
	padT := padTop + legendRows*legendRowH
	h += legendRows * legendRowH
	if c.xFmt == nil {
		c.xFmt = func(v float64) string { return trimFloat(v) }
	}
	if c.yFmt == nil {
		c.yFmt = func(v float64) string { return trimFloat(v) }
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := 0.0, math.Inf(-1)
	n := 0
	for _, s := range c.series {
		for _, p := range s.pts {
			if !finiteF(p[0]) || !finiteF(p[1]) {
				continue
			}
			xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			ymin, ymax = math.Min(ymin, p[1]), math.Max(ymax, p[1])
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>%s</title>`, w, h, w, h, esc(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="18" class="t">%s</text>`, padL, esc(c.title))
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="muted">no data</text></svg>`, w/2-30, h/2)
		return b.String()
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	yt := niceTicks(ymin, ymax*1.05, 5)
	ymax = math.Max(ymax, yt[len(yt)-1])
	pw, ph := float64(w-padL-padR), float64(h-padT-padB)
	X := func(v float64) float64 { return float64(padL) + (v-xmin)/(xmax-xmin)*pw }
	Y := func(v float64) float64 { return float64(padT) + ph - (v-ymin)/(ymax-ymin)*ph }
	// Grid and axes.
	for _, v := range yt {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="g"/>`, padL, Y(v), w-padR, Y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s</text>`, padL-6, Y(v)+4, esc(c.yFmt(v)))
	}
	xt := c.xTicks
	if xt == nil {
		xt = niceTicks(xmin, xmax, 6)
	}
	for _, v := range xt {
		if v < xmin || v > xmax {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="g"/>`, X(v), padT, X(v), h-padB)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="xl">%s</text>`, X(v), h-padB+16, esc(c.xFmt(v)))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" class="frame"/>`, padL, padT, pw, ph)
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" class="xl">%s</text>`, float64(padL)+pw/2, h-8, esc(c.xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.0f" class="yl" transform="rotate(-90 14 %.0f)">%s</text>`, float64(padT)+ph/2, float64(padT)+ph/2, esc(c.yLabel))
	// Series, then a legend.
	for i, s := range c.series {
		col := s.color
		if col == "" {
			col = palette[i%len(palette)]
		}
		if s.dots {
			for _, p := range s.pts {
				if finiteF(p[0]) && finiteF(p[1]) {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, X(p[0]), Y(p[1]), col)
				}
			}
		} else {
			var pts []string
			for _, p := range s.pts {
				if finiteF(p[0]) && finiteF(p[1]) {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(p[0]), Y(math.Min(p[1], ymax))))
				}
			}
			dash := ""
			if s.dash {
				dash = ` stroke-dasharray="5,4"`
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`, col, dash, strings.Join(pts, " "))
		}
		lx := padL + (i%legendCols)*210
		ly := padTop + 4 + (i/legendCols)*legendRowH
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" class="lg">%s</text>`,
			lx, ly-9, col, lx+14, ly, esc(s.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

func finiteF(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func trimFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}
