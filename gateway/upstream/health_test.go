package upstream

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthCheckDownAndUp(t *testing.T) {
	var failing atomic.Bool
	var probes atomic.Int64
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
			if failing.Load() {
				w.WriteHeader(503)
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	set := metrics.NewSet()
	c := newCluster(t, config.Cluster{HealthCheck: &config.HealthCheck{
		Path: "/healthz", Interval: dur(10 * time.Millisecond), Timeout: dur(time.Second),
		HealthyThreshold: 2, UnhealthyThreshold: 2,
	}}, set, addr)
	c.Start(context.Background())
	if !c.Hosts()[0].Healthy {
		t.Fatal("host must start healthy")
	}
	waitFor(t, "first probes", func() bool { return probes.Load() >= 2 })
	if !c.Hosts()[0].Healthy {
		t.Fatal("passing probes marked the host down")
	}

	failing.Store(true)
	waitFor(t, "host marked unhealthy", func() bool { return !c.Hosts()[0].Healthy })
	_, err := c.Call(context.Background(), apiReq("a.b"), 0)
	e := mustUpstreamError(t, err)
	if e.Kind != NoHealthyHost || e.Sent || !e.Retriable() || e.Status != 503 {
		t.Errorf("call to a cluster with no healthy host: kind %v sent %v status %d", e.Kind, e.Sent, e.Status)
	}
	if c.Available() {
		t.Error("Available with the only host down")
	}
	if got := gaugeLine(set, `mgw_upstream_hosts_healthy{cluster="test"}`); got != "0" {
		t.Errorf("hosts_healthy = %s, want 0", got)
	}

	failing.Store(false)
	waitFor(t, "host healthy again", func() bool { return c.Hosts()[0].Healthy })
	if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
		t.Errorf("call after recovery: %v", err)
	}
	if got := gaugeLine(set, `mgw_upstream_hosts_healthy{cluster="test"}`); got != "1" {
		t.Errorf("hosts_healthy = %s, want 1", got)
	}
	c.Close()
	n := probes.Load()
	time.Sleep(50 * time.Millisecond)
	if probes.Load() > n+1 {
		t.Errorf("probes went on after Close: %d then %d", n, probes.Load())
	}
}

// gaugeLine returns the value of the series named exactly name in set's exposition.
func gaugeLine(set *metrics.Set, name string) string {
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return "<absent>"
}
