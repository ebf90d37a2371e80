package gateway

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/gateway/upstream"
	"github.com/mgw-project/mgw/netpoll"
)

// gwMetrics are the gateway's own series. Names mirror the config's hierarchy (listener,
// api, cluster) and are global, never per connection. The per-request series are looked up
// through a cache so the hot path does not format names.
type gwMetrics struct {
	set       *metrics.Set
	reqs      sync.Map                  // reqKey -> *reqSeries: one lookup per request
	lastReq   atomic.Pointer[reqSeries] // the series the last request counted in
	lat       sync.Map                  // latKey -> *metrics.Histogram, shared by the reqSeries of an API and cluster
	protoErrs sync.Map                  // listener/reason -> *metrics.Counter
	adm       *admissionMetrics

	// Hot upgrade: connections handed to the new process, connections that could not
	// move (drained here instead), and upgrades rolled back.
	upgradeMigrated  *metrics.Counter
	upgradeFailed    *metrics.Counter
	upgradeRollbacks *metrics.Counter
}

// admissionMetrics are admission control's series (admission.go).
type admissionMetrics struct {
	admitted *metrics.Counter
	refused  [nRefusals]*metrics.Counter
	queue    *metrics.Histogram // wait from the bytes seen ready to the request's start
	panics   *metrics.Counter
	probes   *metrics.Counter // baseline probes (admission_overload.go)
}

func newAdmissionMetrics(set *metrics.Set) *admissionMetrics {
	m := &admissionMetrics{
		admitted: set.GetOrCreateCounter("mgw_admission_admitted_total"),
		queue:    set.GetOrCreateHistogram("mgw_admission_queue_seconds"),
		panics:   set.GetOrCreateCounter("mgw_request_panics_total"),
		probes:   set.GetOrCreateCounter("mgw_admission_baseline_probes_total"),
	}
	for r := refusedLimit; r < nRefusals; r++ {
		m.refused[r] = set.GetOrCreateCounter(fmt.Sprintf(`mgw_admission_refused_total{reason=%q}`, r.String()))
	}
	return m
}

// registerAdmission exports the limit and what holds it as gauges read at scrape time.
func (m *gwMetrics) registerAdmission(a *admission) {
	m.set.GetOrCreateGauge("mgw_admission_limit", func() float64 { return float64(a.limit.Load()) })
	m.set.GetOrCreateGauge("mgw_admission_in_flight", func() float64 { return float64(a.inFlight.Load()) })
	m.set.GetOrCreateGauge("mgw_admission_active_connections", func() float64 { return float64(a.active.Load()) })
	m.set.GetOrCreateGauge("mgw_admission_queue_wait_seconds", func() float64 { return float64(a.lastWait.Load()) / 1e9 })
	m.set.GetOrCreateGauge("mgw_admission_latency_seconds", func() float64 { return float64(a.lastLat.Load()) / 1e9 })
	m.set.GetOrCreateGauge("mgw_admission_latency_baseline_seconds", func() float64 { return float64(a.baseLat.Load()) / 1e9 })
	m.set.GetOrCreateGauge("mgw_admission_overloaded", func() float64 {
		if a.isOverloaded() {
			return 1
		}
		return 0
	})
}

type reqKey struct {
	listener, api, cluster string
	status                 int
}

type latKey struct{ api, cluster string }

func newGWMetrics(set *metrics.Set) *gwMetrics {
	return &gwMetrics{set: set, adm: newAdmissionMetrics(set),
		upgradeMigrated:  set.GetOrCreateCounter("mgw_upgrade_migrated_total"),
		upgradeFailed:    set.GetOrCreateCounter("mgw_upgrade_failed_total"),
		upgradeRollbacks: set.GetOrCreateCounter("mgw_upgrade_rollbacks_total")}
}

func (m *gwMetrics) request(listener string, x *filters.Exchange, status int, took time.Duration) {
	api := x.Route
	if api == "" {
		api = "no_route"
	}
	k := reqKey{listener, api, x.Cluster, status}
	// Requests come in runs of one API, cluster and status; comparing with the last one's
	// series is cheaper than hashing four strings into the map.
	if rs := m.lastReq.Load(); rs != nil && rs.key == k {
		rs.count.Inc()
		rs.lat.Update(took.Seconds())
		return
	}
	v, ok := m.reqs.Load(k)
	if !ok {
		lk := latKey{api, x.Cluster}
		h, ok := m.lat.Load(lk)
		if !ok {
			h, _ = m.lat.LoadOrStore(lk, m.set.GetOrCreateHistogram(fmt.Sprintf(
				`mgw_request_duration_seconds{api=%q,cluster=%q}`, api, x.Cluster)))
		}
		v, _ = m.reqs.LoadOrStore(k, &reqSeries{key: k,
			count: m.set.GetOrCreateCounter(fmt.Sprintf(
				`mgw_requests_total{listener=%q,api=%q,cluster=%q,status="%d"}`, listener, api, x.Cluster, status)),
			lat: h.(*metrics.Histogram)})
	}
	rs := v.(*reqSeries)
	m.lastReq.Store(rs)
	rs.count.Inc()
	rs.lat.Update(took.Seconds())
}

// reqSeries is what a request counts in: its counter and its API's latency histogram.
type reqSeries struct {
	key   reqKey
	count *metrics.Counter
	lat   *metrics.Histogram
}

// protocolError counts a connection closed for breaking its protocol, by reason.
func (m *gwMetrics) protocolError(listener, reason string) {
	k := listener + "\x00" + reason
	c, ok := m.protoErrs.Load(k)
	if !ok {
		c, _ = m.protoErrs.LoadOrStore(k, m.set.GetOrCreateCounter(fmt.Sprintf(
			`mgw_protocol_errors_total{listener=%q,reason=%q}`, listener, reason)))
	}
	c.(*metrics.Counter).Inc()
}

// registerEngine exports the reactor's and the process's counters as gauges read at
// scrape time.
func (m *gwMetrics) registerEngine(g *Gateway) {
	eng := g.engine
	snap := func() netpoll.Stats { return eng.Stats() }
	f := func(name string, v func(s *netpoll.Stats) float64) {
		m.set.GetOrCreateGauge(name, func() float64 { s := snap(); return v(&s) })
	}
	f("mgw_engine_connections_open", func(s *netpoll.Stats) float64 { return float64(s.Open) })
	f("mgw_engine_accepted_total", func(s *netpoll.Stats) float64 { return float64(s.Accepted) })
	f("mgw_engine_accept_paused_total", func(s *netpoll.Stats) float64 { return float64(s.AcceptPaused) })
	f("mgw_engine_accept_throttled_total", func(s *netpoll.Stats) float64 { return float64(s.AcceptThrottled) })
	f("mgw_engine_events_total", func(s *netpoll.Stats) float64 { return float64(s.Events) })
	f("mgw_engine_bytes_in_total", func(s *netpoll.Stats) float64 { return float64(s.BytesIn) })
	f("mgw_engine_bytes_out_total", func(s *netpoll.Stats) float64 { return float64(s.BytesOut) })
	f("mgw_engine_queued_write_bytes", func(s *netpoll.Stats) float64 { return float64(s.QueuedBytes) })
	f("mgw_engine_pending_bytes", func(s *netpoll.Stats) float64 { return float64(s.PendingBytes) })
	f("mgw_engine_pool_running", func(s *netpoll.Stats) float64 { return float64(s.PoolRunning) })
	f("mgw_engine_pool_waiting", func(s *netpoll.Stats) float64 { return float64(s.PoolWaiting) })
	f("mgw_engine_pool_capacity", func(s *netpoll.Stats) float64 { return float64(s.PoolCap) })
	// The budgets in force (-1: off), resolved as the engine did, after the memory limit.
	qb, pb := netpoll.Budgets(g.cfg.Runtime.Budgets())
	m.set.GetOrCreateGauge("mgw_engine_queued_budget_bytes", func() float64 { return float64(qb) })
	m.set.GetOrCreateGauge("mgw_engine_pending_budget_bytes", func() float64 { return float64(pb) })
	for _, r := range netpoll.AllCloseReasons() {
		r := r
		f(fmt.Sprintf(`mgw_engine_closed_total{reason=%q}`, r.String()),
			func(s *netpoll.Stats) float64 { return float64(s.ClosedBy(r)) })
	}
	m.set.GetOrCreateGauge("mgw_requests_in_flight", func() float64 { return float64(g.inFlight.Load()) })
	m.set.GetOrCreateGauge("mgw_request_pool_running", func() float64 { return float64(g.reqPool.Running()) })
	m.set.GetOrCreateGauge("mgw_goroutines", func() float64 { return float64(runtime.NumGoroutine()) })
}

// clusterGauges keeps the gauges that describe the clusters in step with the live config:
// each cluster of d gets its host gauges, read at scrape time from the dispatch in force
// then (so a reload counts the new cluster alone, not the old one still finishing its
// requests as well), and the clusters prev had and d has not lose theirs. Called with
// g.mu held, after d was made live.
func (g *Gateway) clusterGauges(prev, d *dispatch) {
	for name := range d.clusters {
		upstream.RegisterHostGauges(g.set, name, func() *upstream.Cluster {
			return g.snap.Load().clusters[name]
		})
	}
	if prev == nil {
		return
	}
	for name := range prev.clusters {
		if _, ok := d.clusters[name]; !ok {
			upstream.UnregisterHostGauges(g.set, name)
		}
	}
}

// listenerMetrics are one listener's connection series.
type listenerMetrics struct {
	accepted  *metrics.Counter
	open      *metrics.Counter // not a gauge: Inc/Dec from open/close callbacks
	closed    map[netpoll.CloseReason]*metrics.Counter
	retired   *metrics.Counter // told to go at max_connection_age
	helloHeld *metrics.Counter // HELLOs that waited for max_hello_rate
}

func newListenerMetrics(set *metrics.Set, name string) *listenerMetrics {
	lm := &listenerMetrics{
		accepted:  set.GetOrCreateCounter(fmt.Sprintf(`mgw_listener_accepted_total{listener=%q}`, name)),
		open:      set.GetOrCreateCounter(fmt.Sprintf(`mgw_listener_connections{listener=%q}`, name)),
		closed:    make(map[netpoll.CloseReason]*metrics.Counter),
		retired:   set.GetOrCreateCounter(fmt.Sprintf(`mgw_listener_retired_total{listener=%q}`, name)),
		helloHeld: set.GetOrCreateCounter(fmt.Sprintf(`mgw_listener_hello_delayed_total{listener=%q}`, name)),
	}
	for _, r := range netpoll.AllCloseReasons() {
		lm.closed[r] = set.GetOrCreateCounter(fmt.Sprintf(`mgw_listener_closed_total{listener=%q,reason=%q}`, name, r.String()))
	}
	return lm
}
