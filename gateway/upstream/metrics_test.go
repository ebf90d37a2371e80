package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

func TestMetricsSeries(t *testing.T) {
	set := metrics.NewSet()
	ok := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	dead := closedPort(t)
	c := newCluster(t, config.Cluster{Name: `we"ird`}, set, ok, dead)
	for range 4 {
		c.Call(context.Background(), apiReq("a.b"), 0)
	}
	// Round robin sends calls 2, 3 and 4 to the dead host first; each connect failure is
	// tried again on the other host, so all four are answered.
	for name, want := range map[string]string{
		`mgw_upstream_requests_total{cluster="we\"ird",host="` + ok + `",outcome="ok"}`:              "4",
		`mgw_upstream_requests_total{cluster="we\"ird",host="` + dead + `",outcome="connect_error"}`: "3",
		`mgw_upstream_connect_retries_total{cluster="we\"ird"}`:                                      "3",
		`mgw_upstream_in_flight{cluster="we\"ird"}`:                                                  "0",
		`mgw_upstream_hosts_healthy{cluster="we\"ird"}`:                                              "2",
	} {
		if got := gaugeLine(set, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	var b strings.Builder
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), `mgw_upstream_request_duration_seconds_bucket{cluster="we\"ird"`) {
		t.Errorf("no latency histogram in\n%s", b.String())
	}
}

// A reload builds the new cluster before closing the old one, which lives on for its
// requests in flight; both share series by name. The host gauges count the live cluster
// alone at every step: not the sum of both while the old one winds down, and not hosts of
// a cluster built and never started or closed.
func TestReloadSharesSeries(t *testing.T) {
	set := metrics.NewSet()
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cfg := config.Cluster{Name: "x", Hosts: []string{addr}}
	var live atomic.Pointer[Cluster]
	RegisterHostGauges(set, "x", live.Load)
	healthy := func() string { return gaugeLine(set, `mgw_upstream_hosts_healthy{cluster="x"}`) }
	if got := healthy(); got != "0" {
		t.Errorf("hosts_healthy with no live cluster = %s, want 0", got)
	}
	if _, err := New(&cfg, Options{Metrics: set}); err != nil { // validation only, never closed
		t.Fatal(err)
	}
	old, err := New(&cfg, Options{Metrics: set})
	if err != nil {
		t.Fatal(err)
	}
	live.Store(old)
	RegisterHostGauges(set, "x", live.Load) // again, as after every reload: a no-op
	if got := healthy(); got != "1" {
		t.Errorf("hosts_healthy with one host = %s, want 1", got)
	}
	cfg.Hosts = []string{addr, closedPort(t)}
	nu, err := New(&cfg, Options{Metrics: set})
	if err != nil {
		t.Fatalf("second cluster of the same name on one set: %v", err)
	}
	defer nu.Close()
	live.Store(nu)
	if got := healthy(); got != "2" {
		t.Errorf("hosts_healthy after reload, old cluster still open = %s, want 2", got)
	}
	old.Close()
	old.Close()
	if got := healthy(); got != "2" {
		t.Errorf("hosts_healthy after the old cluster closed = %s, want 2", got)
	}
	UnregisterHostGauges(set, "x")
	if got := healthy(); got != "<absent>" {
		t.Errorf("hosts_healthy after unregistering = %s", got)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  config.Cluster
		opts Options
		want string
	}{
		{config.Cluster{Name: "a"}, Options{}, "hosts"},
		{config.Cluster{Name: "a", Hosts: []string{"nohostport"}}, Options{}, "hosts[0]"},
		{config.Cluster{Name: "a", Hosts: []string{"@demo"}}, Options{}, "no resolver"},
		{config.Cluster{Name: "a", Hosts: []string{"h:1", "h:1"}}, Options{}, "twice"},
		{config.Cluster{Name: "a", Hosts: []string{"h:1"}, Policy: "random"}, Options{}, "policy"},
		{config.Cluster{Name: "a", Hosts: []string{"h:1"}, PathPrefix: "x"}, Options{}, "path_prefix"},
		{config.Cluster{Name: "a", Hosts: []string{"h:1"}, HealthCheck: &config.HealthCheck{Path: "hz"}}, Options{}, "health_check.path"},
	} {
		_, err := New(&tc.cfg, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %q", tc.cfg, err, tc.want)
		}
	}
	cfg := config.Cluster{Name: "d", Hosts: []string{"@demo"}}
	c, err := New(&cfg, Options{Resolve: func(h string) (string, error) { return "127.0.0.1:9", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := c.Hosts()[0]; h.Name != "@demo" || h.Address != "127.0.0.1:9" {
		t.Errorf("resolved host %+v", h)
	}
}

// A cluster closed while a call is in flight lets the call finish, then closes the
// connection it leaves idle instead of keeping it for idle_conn_timeout.
func TestCloseWithCallInFlight(t *testing.T) {
	b := newBlocker()
	var closed atomic.Int64
	s := httptest.NewUnstartedServer(b)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	cfg := config.Cluster{Name: "x", Hosts: []string{s.Listener.Addr().String()}}
	c, err := New(&cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), apiReq("a.b"), 0)
		done <- err
	}()
	<-b.entered
	c.Close()
	close(b.release)
	if err := <-done; err != nil {
		t.Fatalf("call in flight across Close: %v", err)
	}
	waitFor(t, "the idle connection of a closed cluster to close", func() bool { return closed.Load() == 1 })
}
