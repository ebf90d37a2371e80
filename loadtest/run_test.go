package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/worker"
)

const workerEnv = "MGW_LOADTEST_WORKER_TEST"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(worker.Main(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func testLauncher() worker.Launcher {
	return worker.Launcher{Path: os.Args[0], Env: []string{workerEnv + "=1"}}
}

// fakeStats stands in for the gateway's /v1/stats: RSS grows 10 KB per connection the
// target holds, so the projection has a known slope.
func fakeStats(t *testing.T, srv *testserver.MMTP) (string, *atomic.Int64) {
	var cpu atomic.Int64
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := srv.Conns.Load()
		cpu.Add(10) // 10 ms of CPU per read
		json.NewEncoder(w).Encode(map[string]any{"engine": "fake", "pid": 0, "connections_total": c,
			"goroutines": 7, "rss_bytes": 50e6 + 10000*c, "cpu_seconds": float64(cpu.Load()) / 1000,
			"open_files_limit": 20000, "admission": map[string]any{"queue_wait_ms": 3.5}})
	}))
	t.Cleanup(h.Close)
	return strings.TrimPrefix(h.URL, "http://"), &cpu
}

// TestRunEndToEnd drives every scenario through two real worker processes against an MMTP
// target on loopback and checks the row of each: requests answered, histogram merged,
// gateway figures read, the reference-shaped table and an offline HTML page produced.
func TestRunEndToEnd(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	stats, _ := fakeStats(t, srv)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 40, Ramp: 20, Rate: 200,
		Duration: 1500 * time.Millisecond, Warmup: 500 * time.Millisecond, API: "demo.echo", BodySize: 1024, Workers: 2,
		Scenarios: []string{"steady", "reconnect", "idle"}, PingEvery: 500 * time.Millisecond,
		Stats: stats, Launcher: testLauncher(), Progress: &progress, Seed: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Rows) != 3 || res.Partial || res.Params.Workers != 2 {
		t.Fatalf("rows %d partial %v workers %d", len(res.Rows), res.Partial, res.Params.Workers)
	}
	steady := res.Rows[0]
	if steady.Conns != 40 || steady.Sent != 300 || steady.OK != 300 || steady.Hist.Count() != 300 || len(steady.Errors) != 0 {
		t.Fatalf("steady: conns %d sent %d ok %d hist %d errors %v\n%s", steady.Conns, steady.Sent, steady.OK, steady.Hist.Count(), steady.Errors, progress.String())
	}
	if steady.Engine != "fake" || !steady.Gateway.Available || steady.Gateway.Goroutines != 7 || steady.Gateway.RSSBytes < 50e6+10000*40 {
		t.Fatalf("gateway figures: %+v", steady.Gateway)
	}
	if c := steady.Client; c.Workers != 2 || c.RSSBytes == 0 {
		t.Fatalf("harness cost not measured: %+v", c)
	}
	// The ramp at 20/s takes ~2 s: at least the baseline and two points on the way up, on
	// the fake's exact line of 10 KB per connection.
	if steady.Projection == nil || len(steady.MemPoints) < 3 {
		t.Fatalf("no projection from %d points", len(steady.MemPoints))
	}
	if p := steady.Projection; p.Slope < 9000 || p.Slope > 11000 || !p.Extrapolated || p.Target != 100000 {
		t.Fatalf("projection %+v", p)
	}
	rc := res.Rows[1]
	if rc.Metrics["reconnect_after"] != 40 || rc.Metrics["reconnect_before"] != 40 || rc.Conns != 40 {
		t.Fatalf("reconnect: %+v conns %d", rc.Metrics, rc.Conns)
	}
	idle := res.Rows[2]
	// 40 connections, a PING at the start and every 500ms for 1.5s: 4 rounds, minus a tick
	// that may race the end.
	if idle.OK < 120 || idle.OK != idle.Hist.Count() || idle.Sent != idle.OK {
		t.Fatalf("idle: sent %d ok %d hist %d", idle.Sent, idle.OK, idle.Hist.Count())
	}
	// 40 connections, a PING each every 500 ms: 80/s offered, not -rate's 200.
	if idle.TargetQPS != 80 {
		t.Fatalf("idle target QPS %v, want 80 (PINGs, not -rate)", idle.TargetQPS)
	}
	var table bytes.Buffer
	res.WriteTable(&table, true)
	for _, want := range []string{"fake steady", "fake reconnect", "fake idle", "reference: raw epoll", "PROJECTION", "back in"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if !strings.Contains(progress.String(), "ramp conns") || !strings.Contains(progress.String(), "qps") || !strings.Contains(progress.String(), "warm-up done") {
		t.Errorf("progress lacks ramp or live lines:\n%s", progress.String())
	}
	var page bytes.Buffer
	if err := res.WriteHTML(&page); err != nil || !strings.Contains(page.String(), "<svg") {
		t.Fatalf("html: %v", err)
	}
}

// TestInterruptGivesPartial: cancelling mid-run (Ctrl-C) returns quickly with the rows
// measured so far, marked partial.
func TestInterruptGivesPartial(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	progress := &syncWriter{}
	go func() {
		for !strings.Contains(progress.String(), "ramp done") {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(700 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	res, err := Run(ctx, Options{Target: srv.Addr(), Conns: 4, Rate: 100, Duration: time.Hour,
		Launcher: testLauncher(), Progress: progress})
	if err == nil || res == nil || !res.Partial || len(res.Rows) != 1 {
		t.Fatalf("err %v res %+v", err, res)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("interrupt took too long")
	}
	if row := res.Rows[0]; row.OK == 0 || row.Hist.Count() != row.OK {
		t.Fatalf("partial row %+v", row)
	}
}

// syncWriter is a buffer the run writes progress to while the test reads it.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBadInputFailsFast(t *testing.T) {
	srv, _ := testserver.NewMMTP(nil)
	defer srv.Close()
	h, _ := testserver.NewHTTP()
	defer h.Close()
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Target: "nohost", Conns: 1, Rate: 1, Duration: time.Second}, "-target"},
		{Options{Target: srv.Addr(), Conns: 0, Rate: 1, Duration: time.Second}, "-conns"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: -5, Duration: time.Second}, "-rate"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 0, Duration: time.Second}, "-rate 0"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: 0}, "-duration"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Arrival: "bursty"}, "-arrival"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Scenarios: []string{"chaos"}}, "-scenario"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Secret: "x"}, "-app"},
		{Options{Target: "127.0.0.1:1", Conns: 1, Rate: 1, Duration: time.Second}, "unreachable"},
		{Options{Target: h.Addr(), Conns: 1, Rate: 1, Duration: time.Second}, "no PONG"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Stats: "127.0.0.1:1"}, "-stats"},
		// Before the ramp and the warm-up, not halfway through the measured phase.
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Scenarios: []string{"upgrade"}}, "-scenario upgrade: -stats"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Scenarios: []string{"chaos"}}, "push or upgrade"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Ramp: math.NaN()}, "-ramp NaN"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Protocol: "http1", Hello: true}, "-hello"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Nice: 20}, "-nice 20"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, Nice: -1}, "-nice -1"},
		{Options{Target: srv.Addr(), Conns: 1, Rate: 1, Duration: time.Second, WorkerProcs: -1}, "-worker-procs -1"},
	} {
		start := time.Now()
		_, err := Run(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want it to mention %q", c.o, err, c.want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("%q took %v to fail", c.want, time.Since(start))
		}
	}
}

func TestPlanLimits(t *testing.T) {
	o := Options{Target: "127.0.0.1:9000", Conns: 100000, SourcesAuto: true}
	plan, lim, srcs, err := planLimits(&o, 20000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if lim.RunConns != 20000-GatewayFDMargin || plan.Conns != lim.RunConns && plan.Requested != 100000 {
		t.Fatalf("run %d plan %+v", lim.RunConns, plan)
	}
	if !strings.Contains(strings.Join(lim.Notes, "\n"), "projection") {
		t.Fatalf("notes %v", lim.Notes)
	}
	sum := 0
	for _, n := range plan.PerWorker {
		sum += n
		if uint64(n) > lim.ClientNofile-worker.FDMargin {
			t.Fatalf("worker over its open-file limit: %v", plan.PerWorker)
		}
	}
	if sum != lim.RunConns {
		t.Fatalf("split %v sums to %d, want %d", plan.PerWorker, sum, lim.RunConns)
	}
	_ = srcs
	// No gateway limit: a loopback target past one address's ports gets a source range.
	o = Options{Target: "127.0.0.1:9000", Conns: 60000, SourcesAuto: true}
	_, lim, srcs, _ = planLimits(&o, 0, 1)
	if len(srcs) < 2 || lim.RunConns != 60000 {
		t.Fatalf("srcs %v run %d notes %v", srcs, lim.RunConns, lim.Notes)
	}
	o = Options{Target: "10.0.0.1:9000", Conns: 60000}
	_, lim, _, _ = planLimits(&o, 0, 1)
	if lim.RunConns >= 60000 || !strings.Contains(fmt.Sprint(lim.Notes), "-src") {
		t.Fatalf("one address, 60000 conns: run %d notes %v", lim.RunConns, lim.Notes)
	}
	// A split the user asked for (-per-worker) is named as such, not as the limit's.
	o = Options{Target: "127.0.0.1:9000", Conns: 3000, PerWorker: 1000}
	plan, lim, _, _ = planLimits(&o, 0, 1)
	if notes := fmt.Sprint(lim.Notes); len(plan.PerWorker) != 3 || !strings.Contains(notes, "-per-worker 1000: 3000 connections split across 3") {
		t.Fatalf("-per-worker 1000, 3000 conns: split %v notes %v", plan.PerWorker, lim.Notes)
	}
}
