package loadtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/worker"
)

func runPush(t *testing.T, faults testserver.PushFaults) (*testserver.Push, Options) {
	t.Helper()
	srv, err := testserver.NewPush("tok", faults)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, Options{Target: srv.Addr(), Conns: 30, Rate: 200, Duration: time.Second, Workers: 2,
		Scenarios: []string{worker.Push}, Admin: srv.AdminURL(), AdminToken: "tok", PushCrash: 0.05,
		Launcher: testLauncher(), Seed: 1}
}

// TestPushScenario runs the push scenario through two real worker processes against a
// push-capable target on loopback: every push published is processed once, the forced
// reconnects bring each crashed push again, and the figures reach the row and the table.
func TestPushScenario(t *testing.T) {
	_, o := runPush(t, testserver.PushFaults{})
	var progress bytes.Buffer
	o.Progress = &progress
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	row := res.Rows[0]
	m := row.Metrics
	if row.Sent != 200 || m[worker.MetricPushPublished] != 200 || m[worker.MetricPushProcessed] != 200 ||
		row.OK != 200 || row.Hist.Count() != 200 || m[worker.MetricPushLost] != 0 {
		t.Fatalf("sent %d ok %d latencies %d metrics %v\n%s", row.Sent, row.OK, row.Hist.Count(), m, progress.String())
	}
	if m[worker.MetricPushReconnects] == 0 || m[worker.MetricPushRedelivered] != m[worker.MetricPushReconnects] {
		t.Fatalf("reconnects %v redelivered %v: each crashed push must come again", m[worker.MetricPushReconnects], m[worker.MetricPushRedelivered])
	}
	var table bytes.Buffer
	res.WriteTable(&table, false)
	if !strings.Contains(table.String(), "\npush: devices held") || !strings.Contains(table.String(), "LOST 0 (must be 0)") {
		t.Fatalf("table lacks the push figures:\n%s", table.String())
	}
}

// TestPushScenarioSeesLoss: a target that accepts a publish and never delivers it.
func TestPushScenarioSeesLoss(t *testing.T) {
	_, o := runPush(t, testserver.PushFaults{Drop: func(device string, seq uint64) bool { return device == "lt-7" && seq == 3 }})
	o.PushCrash = -1
	o.Timeout = time.Second // the drain waits this long for what never comes
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Rows[0].Metrics; m[worker.MetricPushLost] != 1 || m[worker.MetricPushPublished] != 200 || m[worker.MetricPushReconnects] != 0 {
		t.Fatalf("metrics %v, want 1 lost of 200, no reconnects", m)
	}
}

func TestPushScenarioNeedsAdmin(t *testing.T) {
	_, o := runPush(t, testserver.PushFaults{})
	o.Admin = ""
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "-admin") {
		t.Fatalf("err = %v, want one naming -admin", err)
	}
}
