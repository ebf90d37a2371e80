package route

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func newTestRouter(t *testing.T, logBuf *bytes.Buffer) (*Router, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	var log *slog.Logger
	if logBuf != nil {
		log = slog.New(slog.NewTextHandler(logBuf, nil))
	} else {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := NewRouter(testConfig(), RouterOptions{Logger: log, Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	return r, set
}

// Every decision made while splits flip must match one of the two tables exactly.
func TestRouterConcurrentSetSplit(t *testing.T) {
	r, _ := newTestRouter(t, nil)
	splitA := map[string]int{"decentralized": 95, "mesh": 5}
	splitB := map[string]int{"decentralized": 20, "mesh": 30, "central": 50}
	devs := ids(400)
	wantA := sideOf(t, mustTable(t, withSplit(testConfig(), payAPI, splitA)), payAPI, devs)
	wantB := sideOf(t, mustTable(t, withSplit(testConfig(), payAPI, splitB)), payAPI, devs)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var decisions, bad atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; !stop.Load(); i = (i + 1) % len(devs) {
				d, ok := r.Decide(deviceReq(payAPI, devs[i]))
				if !ok || (d.Cluster != wantA[i] && d.Cluster != wantB[i]) {
					bad.Add(1)
				}
				decisions.Add(1)
			}
		}(g)
	}
	for i := 0; i < 200; i++ {
		split := splitA
		if i%2 == 0 {
			split = splitB
		}
		if _, err := r.SetSplit(payAPI, split); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d decisions matched neither table", bad.Load(), decisions.Load())
	}
	// A table loaded before a change keeps deciding by its own split.
	old := r.Load()
	if _, err := r.SetSplit(payAPI, map[string]int{"central": 1}); err != nil {
		t.Fatal(err)
	}
	if got := sideOf(t, old, payAPI, devs); !slices.Equal(got, wantA) { // the loop ended on splitA
		t.Fatalf("old table changed under a request")
	}
	if got := sideOf(t, r.Load(), payAPI, devs[:1]); got[0] != "central" {
		t.Fatalf("new table: %v", got)
	}
}

func TestRouterChangesValidatedAndLogged(t *testing.T) {
	var buf bytes.Buffer
	r, _ := newTestRouter(t, &buf)
	before := r.Load()
	for _, c := range []struct {
		split map[string]int
		want  string
	}{
		{map[string]int{"mesh": -3, "decentralized": 1}, "split.mesh: weight -3 is negative"},
		{map[string]int{"ghost": 3}, `split.ghost: unknown cluster "ghost"`},
		{map[string]int{"mesh": 0}, "split: all weights are zero"},
	} {
		if _, err := r.SetSplit(payAPI, c.split); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetSplit(%v) = %v, want %q", c.split, err, c.want)
		}
	}
	if _, err := r.SetSplit("nope", map[string]int{"mesh": 1}); !errors.Is(err, ErrNoSuchRoute) {
		t.Errorf("unknown route: %v", err)
	}
	if r.Load() != before {
		t.Fatal("a rejected change replaced the table")
	}
	e, err := r.SetSplit(payAPI, map[string]int{"decentralized": 90, "mesh": 10})
	if err != nil || e.Split["mesh"] != 10 || e.DecidedBy != BySplit {
		t.Fatalf("SetSplit: %+v, %v", e, err)
	}
	log := buf.String()
	if !strings.Contains(log, "route changed") || !strings.Contains(log, "decentralized:95") || !strings.Contains(log, "mesh:10") {
		t.Fatalf("log lacks old and new values:\n%s", log)
	}

	sticky := "user"
	e, err = r.UpdateRoute(payAPI, RouteUpdate{Sticky: &sticky, Fallback: &[]string{"central"}})
	if err != nil || e.Sticky != "user" || len(e.Fallback) != 1 || e.Split["mesh"] != 10 {
		t.Fatalf("UpdateRoute: %+v, %v", e, err)
	}
	bad := "ip"
	if _, err := r.UpdateRoute(payAPI, RouteUpdate{Sticky: &bad}); err == nil || !strings.HasPrefix(err.Error(), "routes[0].sticky:") {
		t.Fatalf("bad sticky: %v", err)
	}

	if _, err := r.SetZoneSwitches(map[string]map[string]int{"zone-a": {"mesh": 101}}); err == nil ||
		!strings.Contains(err.Error(), "switches.zones.zone-a.mesh: percent 101") {
		t.Fatalf("bad zone switch: %v", err)
	}
	effs, err := r.SetZoneSwitches(map[string]map[string]int{"zone-a": {"mesh": 100}})
	if err != nil || effs[0].DecidedBy != ByZone || effs[0].Split["mesh"] != 100 {
		t.Fatalf("zone switch: %+v, %v", effs, err)
	}
	if !strings.Contains(buf.String(), "switches changed") {
		t.Fatal("switch change not logged")
	}
	if _, err := r.SetMeshOnlyApps([]string{"wallet"}); err != nil {
		t.Fatal(err)
	}
	if e := r.Load().Effective(r.Load().Route(payAPI), "wallet"); e.DecidedBy != ByMeshOnlyApp {
		t.Fatalf("mesh-only: %+v", e)
	}
	if _, err := r.SetLabelSwitches(map[string]map[string]int{"rack": {"central": 100}}); err != nil {
		t.Fatal(err)
	}

	// Reload replaces everything; a bad file keeps the old table.
	cfg := testConfig()
	cfg.Routes[0].Split = map[string]int{"mesh": -1}
	if err := r.Replace(cfg); err == nil || !strings.Contains(err.Error(), "routes[0].split.mesh") {
		t.Fatalf("bad reload: %v", err)
	}
	if err := r.Replace(testConfig()); err != nil {
		t.Fatal(err)
	}
	if e := r.Load().Effective(r.Load().Route(payAPI), "wallet"); e.DecidedBy != BySplit || e.Split["mesh"] != 5 {
		t.Fatalf("after reload: %+v", e)
	}
}

func TestRouterMetrics(t *testing.T) {
	r, set := newTestRouter(t, nil)
	var d Decision
	for _, dev := range ids(200) {
		d, _ = r.Decide(deviceReq(payAPI, dev))
	}
	for c, ok := d.Next(false); ok; c, ok = d.Next(false) {
		_ = c
	}
	r.CountFallback(payAPI, "mesh", "central")
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	for _, want := range []string{
		`mgw_route_decisions_total{api="alipay.trade.pay",cluster="decentralized",decided_by="split"}`,
		`mgw_route_fallbacks_total{api="alipay.trade.pay",from="mesh",to="central"}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s:\n%s", want, out)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
