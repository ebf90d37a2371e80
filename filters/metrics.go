package filters

import (
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Counters are the series every filter keeps for one route, created once at Build so the
// request path only increments:
//
//	mgw_filter_rejections_total{filter,route,code}
//	mgw_filter_degraded_total{filter,route}
//	mgw_filter_dryrun_would_reject_total{filter,route}
type Counters struct {
	set            *metrics.Set
	filter, route  string
	Degraded       *metrics.Counter // the filter could not decide (store full/unavailable)
	DryRunRejected *metrics.Counter // a dry-run filter would have refused
}

// NewCounters registers (or finds) the common series of filter on route in set.
func NewCounters(set *metrics.Set, filter, route string) *Counters {
	return &Counters{
		set:            set,
		filter:         filter,
		route:          route,
		Degraded:       set.GetOrCreateCounter(MetricName("mgw_filter_degraded_total", "filter", filter, "route", route)),
		DryRunRejected: set.GetOrCreateCounter(MetricName("mgw_filter_dryrun_would_reject_total", "filter", filter, "route", route)),
	}
}

// Rejections returns the rejection counter for an error code; call it at Build time and
// keep the result.
func (c *Counters) Rejections(code string) *metrics.Counter {
	return c.set.GetOrCreateCounter(MetricName("mgw_filter_rejections_total", "filter", c.filter, "route", c.route, "code", code))
}

// Metric returns a counter named name with the filter's route label plus extra label
// pairs, for a filter's own series.
func (c *Counters) Metric(name string, labels ...string) *metrics.Counter {
	return c.set.GetOrCreateCounter(MetricName(name, append([]string{"route", c.route}, labels...)...))
}

// MetricName formats name{k1="v1",k2="v2"} with the values escaped as Prometheus text
// requires (route labels are user-written API patterns).
func MetricName(name string, kv ...string) string {
	var b strings.Builder
	b.WriteString(name)
	if len(kv) == 0 {
		return b.String()
	}
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		for _, r := range kv[i+1] {
			switch r {
			case '\\':
				b.WriteString(`\\`)
			case '"':
				b.WriteString(`\"`)
			case '\n':
				b.WriteString(`\n`)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
