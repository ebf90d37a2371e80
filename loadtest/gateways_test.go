package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/project"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

func TestGatewayProcs(t *testing.T) {
	for _, c := range []struct {
		conns  int
		nofile uint64
		want   int
	}{
		{3000, 20000, 1},
		{20000 - GatewayFDMargin, 20000, 1}, // one process needs no headroom for a spread
		{20000 - GatewayFDMargin + 1, 20000, 2},
		{100000, 20000, 6},
		{3000, 1800, 3},
		{10_000_000, 20000, MaxGatewayProcs},
	} {
		got, err := gatewayProcs(c.conns, c.nofile)
		if err != nil || got != c.want {
			t.Errorf("gatewayProcs(%d, %d) = %d, %v; want %d", c.conns, c.nofile, got, err, c.want)
		}
	}
	// Shared processes are planned with room for the hash's spread, never to their limit.
	for _, nofile := range []uint64{1800, 20000, 1 << 20} {
		room := float64(nofile) - GatewayFDMargin
		share := float64(gatewayCapacity(nofile, 4) / 4)
		if share+spreadSigmas*math.Sqrt(share) > room || share < room*0.8 {
			t.Errorf("nofile %d: share %.0f of room %.0f", nofile, share, room)
		}
	}
	if _, err := gatewayProcs(10, GatewayFDMargin); err == nil || !strings.Contains(err.Error(), fmt.Sprint(GatewayFDMargin)) {
		t.Errorf("nofile at the margin: %v", err)
	}
}

func TestPlanLimitsSeveralGateways(t *testing.T) {
	o := Options{Target: "127.0.0.1:9000", Conns: 100000, SourcesAuto: true}
	_, lim, _, err := planLimits(&o, 20000, 6)
	if err != nil {
		t.Fatal(err)
	}
	if lim.RunConns != 100000 || lim.GatewayProcs != 6 || strings.Contains(fmt.Sprint(lim.Notes), "projection") {
		t.Fatalf("six gateways hold 100k: run %d procs %d notes %v", lim.RunConns, lim.GatewayProcs, lim.Notes)
	}
	_, lim, _, err = planLimits(&o, 20000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if lim.RunConns >= 2*(20000-GatewayFDMargin) || !strings.Contains(fmt.Sprint(lim.Notes), "2 gateway processes") ||
		!strings.Contains(fmt.Sprint(lim.Notes), "projection") {
		t.Fatalf("two gateways cannot hold 100k: run %d notes %v", lim.RunConns, lim.Notes)
	}
}

// fakeGateway is one gateway process's /v1/stats: it counts half the target's connections
// and its RSS grows perConn bytes for each from idle.
func fakeGateway(t *testing.T, srv *testserver.MMTP, idle, perConn int64, gor int) *httptest.Server {
	var reads atomic.Int64
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := srv.Conns.Load() / 2
		json.NewEncoder(w).Encode(map[string]any{"engine": "fake", "pid": 0, "connections_total": c,
			"goroutines": gor, "rss_bytes": idle + perConn*c, "cpu_seconds": float64(reads.Add(1)) / 100,
			"open_files_limit": 20000})
	}))
	t.Cleanup(h.Close)
	return h
}

func TestRunSumsGatewayProcesses(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := fakeGateway(t, srv, 20e6, 1000, 3)
	b := fakeGateway(t, srv, 30e6, 3000, 4)
	stats := strings.TrimPrefix(a.URL, "http://") + "," + strings.TrimPrefix(b.URL, "http://")
	var progress syncWriter
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 40, Rate: 100, Duration: 1500 * time.Millisecond,
		Stats: stats, Launcher: testLauncher(), Progress: &progress, Seed: 1})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	g := res.Rows[0].Gateway
	// Each counts 20 of the 40 connections: 20e6+1000*20 + 30e6+3000*20.
	if g.Procs != 2 || len(g.Processes) != 2 || g.Conns != 40 || g.RSSBytes != 50e6+80000 || g.Goroutines != 7 {
		t.Fatalf("summed gateway figures: %+v", g)
	}
	if g.IdleRSSBytes != 50e6 || g.IdleGoroutines != 7 || g.PerConnBytes != 2000 {
		t.Fatalf("idle baseline and cost per connection: idle %d goroutines %d per conn %.1f", g.IdleRSSBytes, g.IdleGoroutines, g.PerConnBytes)
	}
	pa, pb := g.Processes[0], g.Processes[1]
	if pa.Admin != strings.TrimPrefix(a.URL, "http://") || pa.RSSBytes != 20e6+20000 || pa.IdleRSSBytes != 20e6 || pa.Conns != 20 ||
		pb.RSSBytes != 30e6+60000 || pb.Goroutines != 4 || pa.CPUPercent <= 0 || pb.CPUPercent <= 0 {
		t.Fatalf("per-process figures: %+v %+v", pa, pb)
	}
	for _, s := range res.Rows[0].Timeline {
		if s.Phase == "load" && s.GatewayCon != 40 {
			t.Fatalf("timeline sample not summed over processes: %+v", s)
		}
	}
	if res.Limits.GatewayProcs != 2 {
		t.Fatalf("limits: %+v", res.Limits)
	}
}

func TestRunFailsWhenAGatewayProcessStops(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := fakeGateway(t, srv, 20e6, 1000, 3)
	b := fakeGateway(t, srv, 30e6, 3000, 4)
	bAddr := strings.TrimPrefix(b.URL, "http://")
	var progress syncWriter
	stop := time.AfterFunc(1500*time.Millisecond, b.Close)
	defer stop.Stop()
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 20, Rate: 50, Duration: time.Minute,
		Stats: strings.TrimPrefix(a.URL, "http://") + "," + bAddr, Launcher: testLauncher(), Progress: &progress, Seed: 1})
	if err == nil || !strings.Contains(err.Error(), bAddr) {
		t.Fatalf("error %v, want one naming %s\n%s", err, bAddr, progress.String())
	}
	if res == nil || !res.Partial || !strings.Contains(res.Reason, bAddr) || len(res.Rows) != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestParseStats(t *testing.T) {
	gws, err := parseStats(" 127.0.0.1:9901, 127.0.0.1:9902 ,,http://10.0.0.1:9901/v1/stats")
	if err != nil || len(gws) != 3 || gws[1].url != "http://127.0.0.1:9902/v1/stats" || !gws[0].local || gws[2].local {
		t.Fatalf("%v %+v", err, gws)
	}
	if _, err := parseStats("127.0.0.1:9901,127.0.0.1:9901"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate: %v", err)
	}
	// Two addresses of one process would count it twice.
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"engine": "fake", "pid": os.Getpid(), "open_files_limit": 20000})
	}))
	defer same.Close()
	u := strings.TrimPrefix(same.URL, "http://")
	r := &runner{http: http.DefaultClient}
	if r.gws, err = parseStats(u + "," + strings.Replace(u, "127.0.0.1", "localhost", 1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.openGateways(context.Background()); err == nil || !strings.Contains(err.Error(), "same process") {
		t.Fatalf("same process twice: %v", err)
	}
}

// A row that held every connection asked for is measured, even when the ramp's last point
// counted a few fewer; one the limits cut short stays a projection.
func TestProjectionOnlyWhenNotHeld(t *testing.T) {
	pts := []project.Point{{X: 0, Y: 60e6}, {X: 50000, Y: 100e6}, {X: 99990, Y: 140e6}}
	r := &runner{o: Options{Conns: 100000}, plan: worker.Plan{Conns: 100000}}
	row := &report.Row{Conns: 100000, MemPoints: pts}
	r.projection(row)
	if row.Projection == nil || row.Projection.Extrapolated {
		t.Fatalf("all 100000 held: %+v", row.Projection)
	}
	r.plan.Conns, row.Conns = 19488, 19488
	r.projection(row)
	if row.Projection == nil || !row.Projection.Extrapolated || row.Projection.Target != 100000 {
		t.Fatalf("19488 of 100000 held: %+v", row.Projection)
	}
}
