package upstream

import (
	"strconv"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Outcome labels of mgw_upstream_requests_total.
const (
	outcomeOK           = "ok" // the backend answered, whatever the status
	outcomeConnectError = "connect_error"
	outcomeTimeout      = "timeout"
	outcomeError        = "error" // reset mid-exchange, malformed or oversized response
	outcomeCanceled     = "canceled"
)

// clusterMetrics are the cluster-wide series. An old and a new Cluster of the same name
// share them during a config reload. in_flight moves by deltas (Inc/Dec), so it counts
// the requests of both, which are all really in flight. The gauges that describe the
// cluster's hosts are not here: see RegisterHostGauges.
type clusterMetrics struct {
	inFlight    *metrics.Gauge // mgw_upstream_in_flight{cluster}
	noHealthy   *metrics.Counter
	overloaded  *metrics.Counter
	idleRetries *metrics.Counter // pooled connections the backend had closed while idle, skipped before use
	// connectRetries: connect failures tried again (nothing had been sent).
	connectRetries *metrics.Counter
	duration       *metrics.PrometheusHistogram
}

// hostMetrics are per-host series; a cluster has a handful of hosts, so this stays small.
type hostMetrics struct {
	ok, connectError, timeout, failed, canceled *metrics.Counter
	ejections                                   *metrics.Counter
	healthChecksFailed                          *metrics.Counter
}

func newClusterMetrics(s *metrics.Set, cluster string) clusterMetrics {
	l := `{cluster=` + labelValue(cluster) + `}`
	return clusterMetrics{
		inFlight:       s.GetOrCreateGauge("mgw_upstream_in_flight"+l, nil),
		noHealthy:      s.GetOrCreateCounter("mgw_upstream_no_healthy_host_total" + l),
		overloaded:     s.GetOrCreateCounter("mgw_upstream_overloaded_total" + l),
		idleRetries:    s.GetOrCreateCounter("mgw_upstream_idle_close_retries_total" + l),
		connectRetries: s.GetOrCreateCounter("mgw_upstream_connect_retries_total" + l),
		duration:       s.GetOrCreatePrometheusHistogram("mgw_upstream_request_duration_seconds" + l),
	}
}

// RegisterHostGauges exports mgw_upstream_hosts_healthy{cluster} (hosts passing active
// checks; all of them without checks) and mgw_upstream_hosts_ejected{cluster} for the
// cluster named name, read at scrape time from live(): the Cluster of that name in the
// config now in force (nil: none, read as 0).
//
// They describe one cluster's hosts, so they must not be shared the way in_flight is:
// during a reload the old Cluster lives on for its requests in flight, and a gauge each
// Cluster added its hosts to counted both (and one built only to validate a config, never
// closed, counted forever). Registering again under a name is a no-op, so call it after
// every reload; UnregisterHostGauges drops a cluster the config no longer has.
func RegisterHostGauges(s *metrics.Set, name string, live func() *Cluster) {
	l := `{cluster=` + labelValue(name) + `}`
	s.GetOrCreateGauge("mgw_upstream_hosts_healthy"+l, func() float64 {
		h, _ := live().HostCounts()
		return float64(h)
	})
	s.GetOrCreateGauge("mgw_upstream_hosts_ejected"+l, func() float64 {
		_, e := live().HostCounts()
		return float64(e)
	})
}

// UnregisterHostGauges removes the series RegisterHostGauges made for name.
func UnregisterHostGauges(s *metrics.Set, name string) {
	l := `{cluster=` + labelValue(name) + `}`
	s.UnregisterMetric("mgw_upstream_hosts_healthy" + l)
	s.UnregisterMetric("mgw_upstream_hosts_ejected" + l)
}

// HostCounts returns how many of the cluster's hosts pass their active health checks
// (all of them when none are configured) and how many are ejected. A nil Cluster has
// none.
func (c *Cluster) HostCounts() (healthy, ejected int) {
	if c == nil {
		return 0, 0
	}
	for _, h := range c.hosts {
		if h.healthy.Load() {
			healthy++
		}
		if h.ejected.Load() {
			ejected++
		}
	}
	return healthy, ejected
}

func newHostMetrics(s *metrics.Set, cluster, host string) hostMetrics {
	l := `cluster=` + labelValue(cluster) + `,host=` + labelValue(host)
	req := func(outcome string) *metrics.Counter {
		return s.GetOrCreateCounter(`mgw_upstream_requests_total{` + l + `,outcome="` + outcome + `"}`)
	}
	return hostMetrics{
		ok:                 req(outcomeOK),
		connectError:       req(outcomeConnectError),
		timeout:            req(outcomeTimeout),
		failed:             req(outcomeError),
		canceled:           req(outcomeCanceled),
		ejections:          s.GetOrCreateCounter(`mgw_upstream_ejections_total{` + l + `}`),
		healthChecksFailed: s.GetOrCreateCounter(`mgw_upstream_health_check_failures_total{` + l + `}`),
	}
}

func (m *hostMetrics) count(kind Kind) {
	switch kind {
	case 0:
		m.ok.Inc()
	case ConnectFailed:
		m.connectError.Inc()
	case Timeout:
		m.timeout.Inc()
	case Canceled:
		m.canceled.Inc()
	default:
		m.failed.Inc()
	}
}

// labelValue quotes a Prometheus label value (backslash, quote and newline escaped).
func labelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return `"` + v + `"`
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

func quote(s string) string { return strconv.Quote(s) }
