package loadtest

import (
	"fmt"

	"github.com/mgw-project/mgw/loadtest/project"
	"github.com/mgw-project/mgw/loadtest/report"
)

// progress prints one line a second: connections during the ramp, then live QPS, errors
// and p99, with the gateway's figures when known.
func (r *runner) progress(st *scenarioState, s report.Sample, ramping bool) {
	gw := ""
	if s.GatewayRSS > 0 {
		gw = fmt.Sprintf(" | gateway conns %d rss %s cpu %.0f%% goroutines %d", s.GatewayCon,
			project.HumanBytes(float64(s.GatewayRSS)), s.GatewayCPU, s.GatewayGor)
	}
	if ramping {
		fmt.Fprintf(r.o.Progress, "[%s] %5.1fs ramp conns %d/%d errors %d%s\n", st.name, s.T, s.Conns, r.plan.Conns, s.Errors, gw)
		return
	}
	fmt.Fprintf(r.o.Progress, "[%s] %5.1fs conns %d qps %.0f p99 %s errors %d%s\n", st.name, s.T, s.Conns, s.QPS,
		report.FmtDur(s.P99), s.Errors, gw)
}
