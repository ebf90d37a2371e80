package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mgw-project/mgw/loadtest/project"
)

// Reference is one row of the design's reference table (issue 7): 100k long connections
// plus 1000 requests/s of 1 KiB on one gateway box.
type Reference struct {
	Model      string
	Conns      int
	QPS        float64
	RSSBytes   float64
	CPUPercent float64
	Goroutines int
}

// References are the two published rows the harness is measured against.
var References = []Reference{
	{Model: "reference: goroutine per connection", Conns: 100000, QPS: 1000, RSSBytes: 3.3e9, CPUPercent: 60, Goroutines: 200028},
	{Model: "reference: raw epoll + goroutine pool", Conns: 100000, QPS: 1000, RSSBytes: 2.5e9, CPUPercent: 18, Goroutines: 28},
}

// WriteTable writes the rows in the reference's shape, the reference rows below them
// (when withRefs), then the kernel's side, projections, limits and notes. Nothing measured
// is left out: a projection is printed as one, and a partial run says it is partial.
func (r *Result) WriteTable(w io.Writer, withRefs bool) error {
	rows := [][]string{{"model", "conns", "QPS", "p50", "p99", "p99.9", "max", "errors", "conns lost", "gw procs", "gw RSS", "idle RSS", "RSS/conn", "CPU", "goroutines"}}
	for _, row := range r.Rows {
		name := row.Name
		if row.Engine != "" {
			name = row.Engine + " " + row.Name
		}
		g := gatewayCells(row.Gateway)
		rows = append(rows, []string{name, fmt.Sprint(row.Conns), fmt.Sprintf("%.0f", row.QPS),
			FmtDur(row.Latency.P50), FmtDur(row.Latency.P99), FmtDur(row.Latency.P999), FmtDur(row.Latency.Max),
			fmtErrors(row.Errors), fmt.Sprint(row.ConnsLost), g.procs, g.rss, g.idle, g.perConn, g.cpu, g.gor})
	}
	for _, row := range r.Rows {
		if p := row.Projection; p != nil && p.Extrapolated {
			rows = append(rows, []string{strings.TrimSpace(row.Engine+" "+row.Name) + " PROJECTED", fmt.Sprintf("%.0f", p.Target),
				"-", "-", "-", "-", "-", "-", "-", "-", "~" + fmtBytes(p.Value), "-", "-", "-", "-"})
		}
	}
	if withRefs {
		for _, ref := range References {
			rows = append(rows, []string{ref.Model, fmt.Sprint(ref.Conns), fmt.Sprintf("%.0f", ref.QPS),
				"-", "-", "-", "-", "-", "-", "-", fmtBytes(ref.RSSBytes), "-", "-", fmt.Sprintf("%.0f%%", ref.CPUPercent), fmt.Sprint(ref.Goroutines)})
		}
	}
	if err := writeMarkdown(w, rows); err != nil {
		return err
	}
	if err := writeOverload(w, r.Rows); err != nil {
		return err
	}
	if err := writePush(w, r.Rows); err != nil {
		return err
	}
	for _, row := range r.Rows {
		label := strings.TrimSpace(row.Engine + " " + row.Name)
		if row.Kernel.TCPInuse > 0 || row.Kernel.SlabReadable {
			slab := "slabinfo not readable"
			if row.Kernel.SlabReadable {
				slab = "socket slabs " + fmtBytes(float64(row.Kernel.SlabBytes))
			}
			fmt.Fprintf(w, "kernel (%s): %d TCP sockets in use, TCP buffers %s, %s (kernel memory, not in gateway RSS; the box's, every process's, peaks of the run)\n",
				label, row.Kernel.TCPInuse, fmtBytes(float64(row.Kernel.TCPMemBytes)), slab)
		}
		if g := row.Gateway; len(g.Processes) > 1 {
			var conns, rss []string
			for _, p := range g.Processes {
				conns = append(conns, fmt.Sprint(p.Conns))
				rss = append(rss, fmtBytes(float64(p.RSSBytes)))
			}
			fmt.Fprintf(w, "gateways (%s): %d processes on one listener, RSS %s idle -> %s summed; per process: conns %s, RSS %s\n",
				label, len(g.Processes), fmtBytes(float64(g.IdleRSSBytes)), fmtBytes(float64(g.RSSBytes)),
				strings.Join(conns, " / "), strings.Join(rss, " / "))
			if g.PSSBytes > 0 {
				fmt.Fprintf(w, "gateways (%s): PSS %s summed: the memory the %d processes take together (RSS summed counts the pages of the binary they share once per process)\n",
					label, fmtBytes(float64(g.PSSBytes)), len(g.Processes))
			}
		}
		if c := row.Client; c.Workers > 0 {
			procs := ""
			if n := row.Metrics["harness_procs"]; n > 0 {
				procs = fmt.Sprintf(" with %.0f Go processor(s) in all", n)
			}
			fmt.Fprintf(w, "harness (%s): %d worker process(es)%s, RSS %s, CPU %.0f%% (the client side, on the same box)\n",
				label, c.Workers, procs, fmtBytes(float64(c.RSSBytes)), c.CPUPercent)
		}
		if p := row.Projection; p != nil {
			fmt.Fprintf(w, "memory (%s): %s\n", label, p)
		}
		for _, n := range row.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", label, n)
		}
	}
	if len(r.Limits.Notes) > 0 {
		for _, n := range r.Limits.Notes {
			fmt.Fprintf(w, "limit: %s\n", n)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if r.Partial {
		fmt.Fprintf(w, "PARTIAL RESULT: %s\n", r.Reason)
	}
	return nil
}

// gwCells are a row's gateway columns, as text.
type gwCells struct{ procs, rss, idle, perConn, cpu, gor string }

// gatewayCells formats the gateway's columns: "n/a" when it gave no figures, "-" for what
// a row from before several processes (or without an idle reading) lacks.
func gatewayCells(g Gateway) gwCells {
	if !g.Available {
		return gwCells{"n/a", "n/a", "n/a", "n/a", "n/a", "n/a"}
	}
	c := gwCells{procs: "-", rss: fmtBytes(float64(g.RSSBytes)), idle: "-", perConn: "-",
		cpu: fmt.Sprintf("%.0f%%", g.CPUPercent), gor: fmt.Sprint(g.Goroutines)}
	if g.Procs > 0 {
		c.procs = fmt.Sprint(g.Procs)
	}
	if g.IdleRSSBytes > 0 {
		c.idle = fmtBytes(float64(g.IdleRSSBytes))
		if g.PerConnBytes > 0 {
			// RSS below its idle figure (memory the runtime gave back meanwhile) says
			// nothing of a connection's cost: "-", not a negative size (the JSON keeps it).
			c.perConn = fmt.Sprintf("%.0f B", g.PerConnBytes)
		}
	}
	return c
}

// FmtDur formats nanoseconds compactly: 850µs, 12.3ms, 1.20s.
func FmtDur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case ns == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtBytes(b float64) string {
	if b >= 1e9 {
		return fmt.Sprintf("%.2f GB", b/1e9)
	}
	return project.HumanBytes(b)
}

// fmtErrors lists error kinds by count, e.g. "timeout=3 status_503=1", or "0".
func fmtErrors(m map[string]uint64) string {
	var keys []string
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "0"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// writeMarkdown writes rows as a padded Markdown table (first row the heading, first column
// left-aligned, the rest right-aligned), so the output pastes into an issue as is.
func writeMarkdown(w io.Writer, rows [][]string) error {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(" " + c + pad + " |")
			} else {
				b.WriteString(" " + pad + c + " |")
			}
		}
		b.WriteString("\n")
	}
	line(rows[0])
	b.WriteString("|")
	for i, wd := range width {
		if i == 0 {
			b.WriteString(strings.Repeat("-", wd+2) + "|")
		} else {
			b.WriteString(strings.Repeat("-", wd+1) + ":|")
		}
	}
	b.WriteString("\n")
	for _, r := range rows[1:] {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeOverload writes the overload scenario's steps (rows named "overload ..."), one line
// each: what was offered, what was answered OK per second and how that compares with the
// best of the lower rates, what was refused and how fast, what timed out, and what the
// gateway cost. Nothing is written when the run had no such rows.
func writeOverload(w io.Writer, rows []Row) error {
	tbl := [][]string{{"step", "offered/s", "OK/s", "vs best below", "refused 503", "timeouts", "other errors",
		"p50 OK", "p99 OK", "slowest 503", "503 >10ms", "latest send", "slowest 503 from send", "503 >10ms from send",
		"gw queue wait", "goroutines", "gw RSS", "in flight before"}}
	for i, row := range rows {
		if !strings.HasPrefix(row.Name, "overload") {
			continue
		}
		vs := "-"
		if best := bestBelow(rows[:i], row.TargetQPS); best > 0 {
			vs = fmt.Sprintf("%.0f%%", row.QPS/best*100)
		}
		other := map[string]uint64{}
		for k, v := range row.Errors {
			if k != "status_503" && k != "timeout" {
				other[k] = v
			}
		}
		gor, rss := "n/a", "n/a"
		if row.Gateway.Available {
			gor, rss = fmt.Sprint(row.Gateway.Goroutines), fmtBytes(float64(row.Gateway.RSSBytes))
		}
		before, wait := "n/a", "n/a"
		if v, ok := row.Metrics["gw_in_flight_before"]; ok {
			before = fmt.Sprintf("%.0f", v)
		}
		if v, ok := row.Metrics["gw_queue_wait_max_ms"]; ok {
			wait = FmtDur(int64(v * 1e6))
		}
		tbl = append(tbl, []string{row.Name, fmt.Sprintf("%.0f", row.TargetQPS), fmt.Sprintf("%.0f", row.QPS), vs,
			fmt.Sprint(row.Errors["status_503"]), fmt.Sprint(row.Errors["timeout"]), fmtErrors(other),
			FmtDur(row.Latency.P50), FmtDur(row.Latency.P99),
			FmtDur(int64(row.Metrics["refusal_max_ms"] * 1e6)), fmt.Sprintf("%.0f", row.Metrics["refusals_over_10ms"]),
			FmtDur(int64(row.Metrics["send_late_max_ms"] * 1e6)),
			FmtDur(int64(row.Metrics["sent_refusal_max_ms"] * 1e6)), fmt.Sprintf("%.0f", row.Metrics["sent_refusals_over_10ms"]),
			wait, gor, rss, before})
	}
	if len(tbl) == 1 {
		return nil
	}
	fmt.Fprintln(w, "\noverload: OK/s against the best of the lower offered rates (search and steps); latency of OK answers only;"+
		" gw queue wait: the most the gateway reported (/v1/stats, a 100 ms window's average) of the wait in front of its reactor")
	return writeMarkdown(w, tbl)
}

// bestBelow is the most OK answers per second of the overload rows before (the search's
// and the steps', not the probe's) that were offered less than rate: issue 19 holds each
// step to the best seen at any lower rate.
func bestBelow(before []Row, rate float64) float64 {
	best := 0.0
	for _, r := range before {
		if strings.HasPrefix(r.Name, "overload") && r.Name != "overload probe" && r.TargetQPS < rate {
			best = max(best, r.QPS)
		}
	}
	return best
}

// writePush writes the push scenario's figures (rows with push_* metrics), one line each:
// what was published, what the devices received, processed and acknowledged, what forced
// reconnects brought again, what was lost, and the delivery latency.
func writePush(w io.Writer, rows []Row) error {
	tbl := [][]string{{"scenario", "devices", "published", "received", "processed", "acked", "reconnects",
		"redelivered", "duplicates", "resets", "lost", "p50", "p99"}}
	for _, row := range rows {
		if _, ok := row.Metrics["push_published"]; !ok {
			continue
		}
		m := func(k string) string { return fmt.Sprintf("%.0f", row.Metrics[k]) }
		tbl = append(tbl, []string{strings.TrimSpace(row.Engine + " " + row.Name), fmt.Sprint(row.Conns),
			m("push_published"), m("push_received"), m("push_processed"), m("push_acked"), m("push_reconnects"),
			m("push_redelivered"), m("push_duplicates"), m("push_resets"), m("push_lost"),
			FmtDur(row.Latency.P50), FmtDur(row.Latency.P99)})
	}
	if len(tbl) == 1 {
		return nil
	}
	fmt.Fprintln(w, "\npush: devices held, pushes published through the admin API and delivered; latency publish to receipt")
	return writeMarkdown(w, tbl)
}
