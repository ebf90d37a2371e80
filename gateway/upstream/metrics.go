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

// clusterMetrics are the cluster-wide series. Gauges are adjusted by deltas (Inc/Dec/Add)
// rather than computed by callbacks, so that during a config reload an old and a new
// Cluster of the same name can share a series: each adds its own part, and Close takes
// the old one's part back out.
type clusterMetrics struct {
	inFlight     *metrics.Gauge // mgw_upstream_in_flight{cluster}
	hostsHealthy *metrics.Gauge // mgw_upstream_hosts_healthy{cluster}: passing active checks
	hostsEjected *metrics.Gauge // mgw_upstream_hosts_ejected{cluster}
	noHealthy    *metrics.Counter
	overloaded   *metrics.Counter
	idleRetries  *metrics.Counter // pooled connections the backend had closed while idle, skipped before use
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
		hostsHealthy:   s.GetOrCreateGauge("mgw_upstream_hosts_healthy"+l, nil),
		hostsEjected:   s.GetOrCreateGauge("mgw_upstream_hosts_ejected"+l, nil),
		noHealthy:      s.GetOrCreateCounter("mgw_upstream_no_healthy_host_total" + l),
		overloaded:     s.GetOrCreateCounter("mgw_upstream_overloaded_total" + l),
		idleRetries:    s.GetOrCreateCounter("mgw_upstream_idle_close_retries_total" + l),
		connectRetries: s.GetOrCreateCounter("mgw_upstream_connect_retries_total" + l),
		duration:       s.GetOrCreatePrometheusHistogram("mgw_upstream_request_duration_seconds" + l),
	}
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
