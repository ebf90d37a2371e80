package upstream

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// newCluster builds a cluster over the given servers' addresses and closes it at the end.
func newCluster(t testing.TB, cfg config.Cluster, set *metrics.Set, addrs ...string) *Cluster {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	cfg.Hosts = addrs
	c, err := New(&cfg, Options{Metrics: set})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if set != nil {
		RegisterHostGauges(set, cfg.Name, func() *Cluster { return c })
	}
	return c
}

// serve starts an HTTP server on 127.0.0.1:0 and returns its host:port.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// closedPort returns a loopback address nothing listens on: listen, note, close.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var client = netip.MustParseAddrPort("192.0.2.7:5555")

func dur(d time.Duration) config.Duration { return config.Duration(d) }

func mustUpstreamError(t testing.TB, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("error %T %v is not *Error", err, err)
	}
	return e
}
