package route

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// routeMetrics holds the route counters in the Set it was given. Counters are created on
// first use and cached, so a decision costs a map lookup, not a string build. Label
// values are route keys and cluster names from the configuration, so cardinality is
// bounded by the config, never by traffic.
type routeMetrics struct {
	set       *metrics.Set
	decisions sync.Map                        // decisionKey -> *decisionCounter
	last      atomic.Pointer[decisionCounter] // the last decision's, compared before the map
	fallbacks sync.Map                        // fallbackKey -> *metrics.Counter
}

type decisionKey struct{ api, cluster, by string }

type decisionCounter struct {
	key decisionKey
	c   *metrics.Counter
}
type fallbackKey struct{ api, from, to string }

func newRouteMetrics(set *metrics.Set) *routeMetrics {
	if set == nil {
		return nil
	}
	return &routeMetrics{set: set}
}

func (m *routeMetrics) decision(api, cluster, by string) {
	k := decisionKey{api, cluster, by}
	if d := m.last.Load(); d != nil && d.key == k {
		d.c.Inc()
		return
	}
	v, ok := m.decisions.Load(k)
	if !ok {
		v, _ = m.decisions.LoadOrStore(k, &decisionCounter{key: k, c: m.set.GetOrCreateCounter(
			`mgw_route_decisions_total{api="` + esc(api) + `",cluster="` + esc(cluster) + `",decided_by="` + esc(by) + `"}`)})
	}
	d := v.(*decisionCounter)
	m.last.Store(d)
	d.c.Inc()
}

func (m *routeMetrics) fallback(api, from, to string) {
	k := fallbackKey{api, from, to}
	c, ok := m.fallbacks.Load(k)
	if !ok {
		c, _ = m.fallbacks.LoadOrStore(k, m.set.GetOrCreateCounter(
			`mgw_route_fallbacks_total{api="`+esc(api)+`",from="`+esc(from)+`",to="`+esc(to)+`"}`))
	}
	c.(*metrics.Counter).Inc()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// esc escapes a Prometheus label value.
func esc(s string) string { return labelEscaper.Replace(s) }
