package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/report"
)

// TestOverloadScenario runs the overload scenario against a target that refuses every
// other request (503): no offered rate is served without refusals, so after the probe and
// a search that finds none, the steps are multiples of the probe's OK answers; latency is
// of OK answers only, refusals are counted apart with their slowest time, and the table
// has the overload section.
func TestOverloadScenario(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, progress := runOverload(t, srv, "demo.half", 400)
	probe := res.Rows[0]
	if probe.Name != "overload probe" || probe.TargetQPS != 400 || probe.QPS <= 0 {
		t.Fatalf("probe row %q offered %v answered %v/s", probe.Name, probe.TargetQPS, probe.QPS)
	}
	search := searchRows(res.Rows)
	if len(search) != 1+searchTries {
		t.Fatalf("%d search rows, want %d (none clean: all the way down)\n%s", len(search), 1+searchTries, progress)
	}
	for i, row := range search {
		if row.Errors["status_503"] == 0 {
			t.Errorf("search at %.0f/s had no refusal from a target that refuses every other request", row.TargetQPS)
		}
		if i > 0 && row.TargetQPS != math.Round(search[i-1].TargetQPS*searchDown) {
			t.Errorf("search row %d offered %.0f after %.0f, want a step down by %v", i, row.TargetQPS, search[i-1].TargetQPS, searchDown)
		}
	}
	if !hasNote(res, "no rate down to") {
		t.Errorf("no note that the search found no clean rate: %q", res.Notes)
	}
	steps := res.Rows[1+len(search):]
	checkSteps(t, steps, probe.QPS)
	for _, row := range steps {
		if row.OK == 0 || row.Errors["status_503"] == 0 {
			t.Errorf("%s: ok %d refused %d, want both", row.Name, row.OK, row.Errors["status_503"])
		}
		if _, ok := row.Metrics["refusal_max_ms"]; !ok || row.Metrics["refusal_max_ms"] <= 0 {
			t.Errorf("%s: no slowest refusal in %v", row.Name, row.Metrics)
		}
		if got := row.Metrics["gw_queue_wait_max_ms"]; got != 3.5 {
			t.Errorf("%s: gateway's queue wait %v ms, want the 3.5 its stats say", row.Name, got)
		}
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| overload 3x", "| overload search", "slowest 503", "vs best below", "gw queue wait", "3.50ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestOverloadCapacitySearch: against a target that serves 300 requests a second and
// refuses the rest, the capacity the steps are multiples of is the highest offered rate of
// the search that had no refusal: every rate tried at or under it was served clean, every
// one over it was not.
func TestOverloadCapacitySearch(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetCapacity(300)
	res, progress := runOverload(t, srv, "demo.cap", 600)
	probe := res.Rows[0]
	search := searchRows(res.Rows)
	if len(search) < 2 || len(search) > 1+searchTries {
		t.Fatalf("%d search rows, want 2..%d\n%s", len(search), 1+searchTries, progress)
	}
	if search[0].TargetQPS != math.Round(probe.QPS) {
		t.Errorf("search starts at %.0f/s, want the probe's %.0f OK/s", search[0].TargetQPS, probe.QPS)
	}
	capacity := 0.0
	for _, row := range search {
		if row.Errors["status_503"] == 0 && row.Errors["timeout"] == 0 {
			capacity = max(capacity, row.TargetQPS)
		}
	}
	if capacity == 0 {
		t.Fatalf("no search row was served clean by a target with room for 300/s:\n%s", progress)
	}
	for _, row := range search {
		clean := row.Errors["status_503"] == 0
		if clean != (row.TargetQPS <= capacity) {
			t.Errorf("search at %.0f/s: clean %v, but the capacity found is %.0f/s", row.TargetQPS, clean, capacity)
		}
	}
	if !hasNote(res, fmt.Sprintf("capacity %.0f/s", capacity)) {
		t.Errorf("no note naming capacity %.0f/s: %q", capacity, res.Notes)
	}
	checkSteps(t, res.Rows[1+len(search):], capacity)
	var out bytes.Buffer
	if err := res.WriteTable(&out, false); err != nil {
		t.Fatal(err)
	}
	// The 0.5x step is offered less than the search's rows: nothing below it, no "vs".
	for _, line := range strings.Split(out.String(), "\n") {
		if cols := strings.Split(line, "|"); strings.HasPrefix(line, "| overload 0.5x ") && strings.TrimSpace(cols[4]) != "-" {
			t.Errorf("first 0.5x step compared with a higher rate: %s", line)
			break
		}
	}
}

// TestOverloadCapacityLowerBound: with -rate under the capacity, every rate the search
// tries is clean, and what it found is only a lower bound: the note says so (it named
// "capacity 1610/s" for a gateway that then served 3x that without a refusal).
func TestOverloadCapacityLowerBound(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, progress := runOverload(t, srv, "demo.echo", 100)
	if !hasNote(res, "capacity at least") || !hasNote(res, "raise -rate") {
		t.Fatalf("no lower-bound note with a clean probe: %q\n%s", res.Notes, progress)
	}
	if hasNote(res, "the highest offered rate served") {
		t.Errorf("the lower bound is also named as the capacity: %q", res.Notes)
	}
}

func runOverload(t *testing.T, srv *testserver.MMTP, api string, rate float64) (*report.Result, string) {
	t.Helper()
	stats, _ := fakeStats(t, srv)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 8, Rate: rate,
		Duration: 600 * time.Millisecond, API: api, BodySize: 16, Workers: 1,
		Scenarios: []string{"overload"}, Stats: stats, Launcher: testLauncher(), Progress: &progress, Seed: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	return res, progress.String()
}

// searchRows are the capacity search's rows, in the order run.
func searchRows(rows []report.Row) []report.Row {
	var out []report.Row
	for _, r := range rows {
		if r.Name == "overload search" {
			out = append(out, r)
		}
	}
	return out
}

func hasNote(res *report.Result, s string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// checkSteps: one row per step, each offered its multiple of capacity, each latency of
// an OK answer, the gateway's in-flight read before it.
func checkSteps(t *testing.T, steps []report.Row, capacity float64) {
	t.Helper()
	if len(steps) != len(OverloadSteps) {
		t.Fatalf("%d step rows, want %d", len(steps), len(OverloadSteps))
	}
	for i, m := range OverloadSteps {
		row := steps[i]
		if want := m * capacity; math.Abs(row.TargetQPS-want) > 1e-6 {
			t.Errorf("%s offered %v, want %v", row.Name, row.TargetQPS, want)
		}
		if row.Hist.Count() != row.OK {
			t.Errorf("%s: %d latencies recorded for %d OK answers (refusals must not count)", row.Name, row.Hist.Count(), row.OK)
		}
		if _, ok := row.Metrics["gw_in_flight_before"]; !ok {
			t.Errorf("%s: gateway's in-flight before the step not read: %v", row.Name, row.Metrics)
		}
	}
}
