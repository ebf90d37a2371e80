package gateway

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/filters"
)

// Requests of interleaved series each count in their own, whether the last request's
// series (compared before the map) matches or not.
func TestRequestSeriesInterleaved(t *testing.T) {
	set := metrics.NewSet()
	m := newGWMetrics(set)
	a := &filters.Exchange{Route: "demo.*", Cluster: "one"}
	b := &filters.Exchange{Route: "demo.*", Cluster: "two"}
	for _, r := range []struct {
		x      *filters.Exchange
		status int
	}{{a, 200}, {b, 200}, {a, 200}, {a, 200}, {a, 503}, {b, 200}, {a, 503}} {
		m.request("web", r.x, r.status, time.Millisecond)
	}
	var out bytes.Buffer
	set.WritePrometheus(&out)
	for _, want := range []string{
		`mgw_requests_total{listener="web",api="demo.*",cluster="one",status="200"} 3`,
		`mgw_requests_total{listener="web",api="demo.*",cluster="two",status="200"} 2`,
		`mgw_requests_total{listener="web",api="demo.*",cluster="one",status="503"} 2`,
		`mgw_request_duration_seconds_count{api="demo.*",cluster="one"} 5`,
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("missing %s in:\n%s", want, out.String())
		}
	}
}
