package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

const css = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}tr.ref{color:#666;font-style:italic}
.chart{display:block;margin:10px 0;background:#fff}.g{stroke:#eee}.frame{fill:none;stroke:#999}
.t{font-weight:600;font-size:13px}.xl{font-size:11px;text-anchor:middle}.yl{font-size:11px;text-anchor:end}
.lg{font-size:11px}.muted{fill:#999}.warn{background:#fff3cd;padding:6px 10px;border:1px solid #e0c060}
pre{background:#f6f6f6;padding:8px;overflow:auto}`

// WriteHTML writes a self-contained report: the table, the limits and notes, and charts of
// latency percentiles over time, the latency distribution, gateway RSS and connections over
// time, and RSS against connections with the fitted line. It references no external
// resource (no script, stylesheet, font or image), so it opens offline.
func (r *Result) WriteHTML(w io.Writer) error {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mgw loadtest report</title><style>")
	b.WriteString(css)
	b.WriteString("</style></head><body>\n<h1>mgw loadtest report</h1>\n")
	fmt.Fprintf(&b, "<p>%s &mdash; %s<br><code>%s</code></p>\n", esc(r.Started.UTC().Format(time.RFC3339)),
		esc(r.Finished.UTC().Format(time.RFC3339)), esc(r.Command))
	if r.Partial {
		fmt.Fprintf(&b, "<p class=\"warn\">Partial result: %s</p>\n", esc(r.Reason))
	}
	p := r.Params
	fmt.Fprintf(&b, "<p>target %s (%s), %d connections requested, ramp %.0f/s, %.0f req/s %s for %s, api %s, body %d B, signed %v, %d worker process(es)</p>\n",
		esc(p.Target), esc(p.Protocol), p.Conns, p.Ramp, p.Rate, esc(p.Arrival), p.Duration, esc(p.API), p.BodyBytes, p.Signed, p.Workers)

	b.WriteString("<h2>Results</h2>\n")
	r.htmlTable(&b)
	var notes []string
	for _, n := range r.Limits.Notes {
		notes = append(notes, "limit: "+n)
	}
	for _, row := range r.Rows {
		label := strings.TrimSpace(row.Engine + " " + row.Name)
		if row.Kernel.TCPInuse > 0 || row.Kernel.SlabReadable {
			notes = append(notes, fmt.Sprintf("kernel (%s): %d TCP sockets, TCP buffers %s, socket slabs %s (kernel memory, apart from gateway RSS)",
				label, row.Kernel.TCPInuse, fmtBytes(float64(row.Kernel.TCPMemBytes)), fmtBytes(float64(row.Kernel.SlabBytes))))
		}
		if row.Projection != nil {
			notes = append(notes, fmt.Sprintf("memory (%s): %s", label, row.Projection))
		}
		for _, n := range row.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", label, n))
		}
	}
	notes = append(notes, r.Notes...)
	if len(notes) > 0 {
		b.WriteString("<ul>\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", esc(n))
		}
		b.WriteString("</ul>\n")
	}

	b.WriteString("<h2>Charts</h2>\n")
	for _, c := range r.charts() {
		b.WriteString(c.svg())
		b.WriteString("\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Result) htmlTable(b *strings.Builder) {
	b.WriteString("<table><tr><th>model</th><th>conns</th><th>QPS</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>conns lost</th><th>gw procs</th><th>gw RSS</th><th>idle RSS</th><th>RSS/conn</th><th>CPU</th><th>goroutines</th></tr>\n")
	for _, row := range r.Rows {
		name := strings.TrimSpace(row.Engine + " " + row.Name)
		g := gatewayCells(row.Gateway)
		fmt.Fprintf(b, "<tr><td>%s</td><td>%d</td><td>%.0f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			esc(name), row.Conns, row.QPS, FmtDur(row.Latency.P50), FmtDur(row.Latency.P99), FmtDur(row.Latency.P999),
			FmtDur(row.Latency.Max), esc(fmtErrors(row.Errors)), row.ConnsLost, g.procs, g.rss, g.idle, g.perConn, g.cpu, g.gor)
	}
	for _, row := range r.Rows {
		if p := row.Projection; p != nil && p.Extrapolated {
			fmt.Fprintf(b, "<tr class=\"ref\"><td>%s PROJECTED (%.0f B/conn, R&sup2;=%.3f)</td><td>%.0f</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>~%s</td><td>-</td><td>-</td><td>-</td><td>-</td></tr>\n",
				esc(strings.TrimSpace(row.Engine+" "+row.Name)), p.Slope, p.R2, p.Target, fmtBytes(p.Value))
		}
	}
	for _, ref := range References {
		fmt.Fprintf(b, "<tr class=\"ref\"><td>%s</td><td>%d</td><td>%.0f</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>-</td><td>%s</td><td>-</td><td>-</td><td>%.0f%%</td><td>%d</td></tr>\n",
			esc(ref.Model), ref.Conns, ref.QPS, fmtBytes(ref.RSSBytes), ref.CPUPercent, ref.Goroutines)
	}
	b.WriteString("</table>\n")
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// charts builds the charts: per row, latency percentiles and connections over time (a
// row's own scale and a readable legend); across rows, the latency distribution, gateway
// RSS over time, and RSS against connections for rows with a fit.
func (r *Result) charts() []chart {
	var out []chart
	dist := chart{title: "Latency distribution (percentile spectrum)", xLabel: "percentile", yLabel: "ms",
		xTicks: []float64{0, 1, 2, 3, 4, 5},
		xFmt: func(v float64) string {
			return "p" + trimFloat(100*(1-math.Pow(10, -v)))
		}}
	rss := chart{title: "Gateway RSS over time", xLabel: "seconds since the row started", yLabel: "MiB"}
	mem := chart{title: "Gateway RSS against connections (dots measured, dashed fitted line)", xLabel: "connections", yLabel: "MiB"}
	for _, row := range r.Rows {
		label := strings.TrimSpace(row.Engine + " " + row.Name)
		var p50, p99, p999, rs, cn, gc [][2]float64
		for _, s := range row.Timeline {
			if s.P50 > 0 || s.P99 > 0 {
				p50 = append(p50, [2]float64{s.T, ms(s.P50)})
				p99 = append(p99, [2]float64{s.T, ms(s.P99)})
				p999 = append(p999, [2]float64{s.T, ms(s.P999)})
			}
			if s.GatewayRSS > 0 {
				rs = append(rs, [2]float64{s.T, float64(s.GatewayRSS) / (1 << 20)})
				gc = append(gc, [2]float64{s.T, float64(s.GatewayCon)})
			}
			cn = append(cn, [2]float64{s.T, float64(s.Conns)})
		}
		out = append(out, chart{title: label + ": latency percentiles per second (from intended send time)",
			xLabel: "seconds since the row started", yLabel: "ms", height: 240, width: 720,
			series: []series{{name: "p50", color: "#1f77b4", pts: p50}, {name: "p99", color: "#ff7f0e", pts: p99},
				{name: "p99.9", color: "#d62728", pts: p999}}})
		conns := chart{title: label + ": connections", xLabel: "seconds since the row started", yLabel: "connections",
			height: 200, width: 720, series: []series{{name: "held by the harness", color: "#2ca02c", pts: cn}}}
		if len(gc) > 0 {
			conns.series = append(conns.series, series{name: "counted by the gateway", color: "#9467bd", pts: gc, dash: true})
		}
		out = append(out, conns)
		if row.Hist != nil && row.Hist.Count() > 0 {
			var spec [][2]float64
			for x := 0.0; x <= 5.0001; x += 0.05 {
				q := 100 * (1 - math.Pow(10, -x))
				spec = append(spec, [2]float64{x, ms(row.Hist.Percentile(q))})
			}
			dist.series = append(dist.series, series{name: label, pts: spec})
		}
		if len(rs) > 0 {
			rss.series = append(rss.series, series{name: label, pts: rs})
		}
		if f := row.Projection; f != nil && len(row.MemPoints) > 0 {
			col := palette[len(mem.series)/2%len(palette)]
			var mp [][2]float64
			for _, p := range row.MemPoints {
				mp = append(mp, [2]float64{p.X, p.Y / (1 << 20)})
			}
			mem.series = append(mem.series, series{name: label, color: col, pts: mp, dots: true},
				series{name: fmt.Sprintf("%s fit: %.0f B/conn", label, f.Slope), color: col, dash: true,
					pts: [][2]float64{{f.MinX, f.At(f.MinX) / (1 << 20)}, {f.MaxX, f.At(f.MaxX) / (1 << 20)}}})
		}
	}
	return append([]chart{dist, rss, mem}, out...)
}
