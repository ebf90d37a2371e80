package loadtest

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

// TestOverloadScenario runs the overload scenario against a target that refuses every
// other request (503): a probe row measures the capacity from the OK answers, then one
// row per step offers its multiple of it; latency is of OK answers only, refusals are
// counted apart with their slowest time, and the table has the overload section.
func TestOverloadScenario(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	stats, _ := fakeStats(t, srv)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 8, Rate: 400,
		Duration: 700 * time.Millisecond, API: "demo.half", BodySize: 16, Workers: 1,
		Scenarios: []string{"overload"}, Stats: stats, Launcher: testLauncher(), Progress: &progress, Seed: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Rows) != 1+len(OverloadSteps) {
		t.Fatalf("%d rows, want the probe and %d steps\n%s", len(res.Rows), len(OverloadSteps), progress.String())
	}
	probe := res.Rows[0]
	if probe.Name != "overload probe" || probe.TargetQPS != 400 || probe.QPS <= 0 {
		t.Fatalf("probe row %q offered %v answered %v/s", probe.Name, probe.TargetQPS, probe.QPS)
	}
	for i, m := range OverloadSteps {
		row := res.Rows[i+1]
		if want := m * probe.QPS; math.Abs(row.TargetQPS-want) > 1e-6 {
			t.Errorf("%s offered %v, want %v", row.Name, row.TargetQPS, want)
		}
		if row.OK == 0 || row.Errors["status_503"] == 0 {
			t.Errorf("%s: ok %d refused %d, want both", row.Name, row.OK, row.Errors["status_503"])
		}
		if row.Hist.Count() != row.OK {
			t.Errorf("%s: %d latencies recorded for %d OK answers (refusals must not count)", row.Name, row.Hist.Count(), row.OK)
		}
		if _, ok := row.Metrics["refusal_max_ms"]; !ok || row.Metrics["refusal_max_ms"] <= 0 {
			t.Errorf("%s: no slowest refusal in %v", row.Name, row.Metrics)
		}
		if _, ok := row.Metrics["gw_in_flight_before"]; !ok {
			t.Errorf("%s: gateway's in-flight before the step not read: %v", row.Name, row.Metrics)
		}
		if got := row.Metrics["gw_queue_wait_max_ms"]; got != 3.5 {
			t.Errorf("%s: gateway's queue wait %v ms, want the 3.5 its stats say", row.Name, got)
		}
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| overload 3x", "slowest 503", "vs best below", "gw queue wait", "3.50ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
