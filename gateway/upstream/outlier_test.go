package upstream

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

func TestOutlierEjectionAndRecovery(t *testing.T) {
	var badFails atomic.Bool
	badFails.Store(true)
	var badHits atomic.Int64
	bad := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		badHits.Add(1)
		if badFails.Load() {
			w.WriteHeader(500)
		}
		io.WriteString(w, "bad")
	}))
	good := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "good") }))
	set := metrics.NewSet()
	c := newCluster(t, config.Cluster{Outlier: &config.Outlier{ConsecutiveFailures: 3, EjectFor: dur(300 * time.Millisecond)}}, set, bad, good)

	// Round robin alternates, so six calls give the bad host its three failures.
	for range 6 {
		if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
			t.Fatalf("a backend 500 is an answer, not a Call error: %v", err)
		}
	}
	hs := c.Hosts()
	if !hs[0].Ejected || hs[0].Ejections != 1 || hs[0].EjectedUntil.IsZero() || hs[1].Ejected {
		t.Fatalf("after 3 consecutive 500s: %+v", hs)
	}
	if hs[0].Failures != 3 {
		t.Errorf("bad host failures %d, want 3", hs[0].Failures)
	}
	before := badHits.Load()
	for range 10 {
		if got := callBody(t, c, apiReq("a.b")); got != "good" {
			t.Fatalf("call went to the ejected host")
		}
	}
	if badHits.Load() != before {
		t.Error("ejected host got traffic")
	}
	if got := gaugeLine(set, `mgw_upstream_hosts_ejected{cluster="test"}`); got != "1" {
		t.Errorf("hosts_ejected = %s", got)
	}
	if got := gaugeLine(set, `mgw_upstream_ejections_total{cluster="test",host="`+bad+`"}`); got != "1" {
		t.Errorf("ejections_total = %s", got)
	}

	badFails.Store(false)
	waitFor(t, "ejection to end", func() bool { return !c.Hosts()[0].Ejected })
	seen := map[string]int{}
	for range 4 {
		seen[callBody(t, c, apiReq("a.b"))]++
	}
	if seen["bad"] != 2 || seen["good"] != 2 {
		t.Errorf("after recovery %v, want round robin again", seen)
	}
	if got := gaugeLine(set, `mgw_upstream_hosts_ejected{cluster="test"}`); got != "0" {
		t.Errorf("hosts_ejected = %s after recovery", got)
	}
}

func TestOutlierCapKeepsOneHost(t *testing.T) {
	// Both hosts fail; with the default 50% cap only one of two may be ejected.
	fail := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := newCluster(t, config.Cluster{Outlier: &config.Outlier{ConsecutiveFailures: 2, EjectFor: dur(time.Minute)}}, nil, serve(t, fail), serve(t, fail))
	for range 20 {
		c.Call(context.Background(), apiReq("a.b"), 0)
	}
	ejected := 0
	for _, h := range c.Hosts() {
		if h.Ejected {
			ejected++
		}
	}
	if ejected != 1 {
		t.Errorf("%d hosts ejected, want exactly 1 (cap 50%% of 2)", ejected)
	}
}

func TestOutlierConnectErrorsEjectSingleHost(t *testing.T) {
	c := newCluster(t, config.Cluster{Outlier: &config.Outlier{ConsecutiveFailures: 2, EjectFor: dur(time.Minute)}}, nil, closedPort(t))
	// One call tries the connect again after a backoff: its two failures eject the host.
	if e := mustUpstreamError(t, func() error { _, err := c.Call(context.Background(), apiReq("a.b"), 0); return err }()); e.Kind != ConnectFailed {
		t.Fatalf("kind %v", e.Kind)
	}
	_, err := c.Call(context.Background(), apiReq("a.b"), 0)
	if e := mustUpstreamError(t, err); e.Kind != NoHealthyHost {
		t.Errorf("after ejection of the only host: kind %v, want NoHealthyHost", e.Kind)
	}
}
