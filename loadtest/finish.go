package loadtest

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/project"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// finish turns the workers' finals and the samples into the scenario's row.
func (r *runner) finish(st *scenarioState) (*report.Row, error) {
	row := st.row
	var finals []worker.Msg
	for _, m := range st.finals {
		finals = append(finals, m)
	}
	sort.Slice(finals, func(i, j int) bool { return finals[i].Worker < finals[j].Worker })
	var deadIdx []int
	for i := range st.dead {
		deadIdx = append(deadIdx, i)
	}
	sort.Ints(deadIdx)
	for _, i := range deadIdx {
		row.Notes = append(row.Notes, fmt.Sprintf("worker %d failed: %s", i, st.dead[i]))
	}
	if len(finals) == 0 {
		if len(st.dead) > 0 {
			return row, fmt.Errorf("%w: %s", errAllWorkersFailed, st.dead[deadIdx[0]])
		}
		return row, errAllWorkersFailed
	}
	mg := worker.Merge(finals)
	row.Conns = mg.Snap.Open
	row.Sent, row.OK, row.Errors, row.Hist = mg.Snap.Sent, mg.Snap.OK, mg.Snap.Errors, mg.Hist
	row.Latency = report.Summarise(mg.Hist)
	for k, v := range row.Errors {
		if strings.HasPrefix(k, "closed_") { // closed or reset by the gateway's side
			row.ConnsLost += v
		}
	}
	if mg.Snap.Retried > 0 || mg.Snap.Errors[client.ErrLost] > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("GOAWAY: %d requests refused (above last-stream-id, never processed) and sent again; %d accepted and lost",
			mg.Snap.Retried, mg.Snap.Errors[client.ErrLost]))
	}
	for k, v := range mg.Metrics {
		row.Metrics = mergeMetric(row.Metrics, k, v)
	}
	if !st.tGo.IsZero() {
		end := st.tEnd
		if end.IsZero() {
			end = time.Now()
		}
		row.Seconds = min(end.Sub(st.tGo), r.o.Duration).Seconds()
		if row.Seconds > 0 {
			row.QPS = float64(row.OK) / row.Seconds
		}
	}
	for _, s := range row.Timeline {
		row.PeakConns = max(row.PeakConns, s.Conns)
	}

	// Gateway: the most RSS and goroutines while all connections were held under load (the
	// reference's condition), CPU over the measured phase. Teardown is not counted.
	if st.gwSeen {
		g := &row.Gateway
		g.Available = true
		for _, s := range row.Timeline {
			if s.Phase != "load" {
				continue
			}
			g.RSSBytes = max(g.RSSBytes, s.GatewayRSS)
			g.PSSBytes = max(g.PSSBytes, s.GatewayPSS)
			g.Goroutines = max(g.Goroutines, s.GatewayGor)
			g.Conns = max(g.Conns, s.GatewayCon)
		}
		if dt := st.cpuEndAt.Sub(st.cpuGoAt).Seconds(); dt > 0 && !st.cpuGoAt.IsZero() {
			g.CPUPercent = (st.cpuEnd - st.cpuGo) / dt * 100
		}
		r.summariseGateways(st, row)
	}
	// The harness's own cost over the measured phase.
	row.Client.Workers = len(st.procs)
	var cpuSum float64
	var cpuN int
	for _, s := range row.Timeline {
		if s.Phase != "load" {
			continue
		}
		row.Client.RSSBytes = max(row.Client.RSSBytes, s.ClientRSS)
		if s.ClientCPU > 0 {
			cpuSum += s.ClientCPU
			cpuN++
		}
	}
	if cpuN > 0 {
		row.Client.CPUPercent = cpuSum / float64(cpuN)
	}
	// Kernel: absolute socket figures, slab as the change over this scenario.
	row.Kernel = report.Kernel{SlabReadable: st.kEnd.Slab != nil}
	for _, s := range row.Timeline {
		row.Kernel.TCPInuse = max(row.Kernel.TCPInuse, s.KernelSock)
		row.Kernel.TCPMemBytes = max(row.Kernel.TCPMemBytes, s.KernelTCP)
	}
	if row.Kernel.SlabReadable {
		row.Kernel.SlabBytes = st.kEnd.SlabTotal() - st.k0.SlabTotal()
		if row.PeakConns > 0 {
			// Peak slab during the ramp/hold, not after the workers closed their sockets.
			var peak int64
			for _, s := range row.Timeline {
				peak = max(peak, s.KernelSlab)
			}
			row.Kernel.SlabBytes = peak
			socks := row.PeakConns
			where := "client sockets only"
			if isLoopback(r.o.Target) {
				socks *= 2
				where = "client and gateway on this box: 2 sockets per connection"
			}
			row.Notes = append(row.Notes, fmt.Sprintf("kernel socket slabs grew %s for %d connections: about %.0f B per socket (%s; box-wide: other processes' sockets on this box count too)",
				project.HumanBytes(float64(peak)), row.PeakConns, float64(peak)/float64(socks), where))
		}
	}
	if st.index == 0 {
		r.projection(row)
		if p := row.Projection; p != nil && p.Extrapolated && row.Kernel.SlabReadable && row.PeakConns > 0 {
			socks := row.PeakConns
			if isLoopback(r.o.Target) {
				socks *= 2
			}
			perSock := float64(row.Kernel.SlabBytes) / float64(socks)
			row.Notes = append(row.Notes, fmt.Sprintf("at %.0f connections (PROJECTION): gateway RSS ~%s, plus kernel socket memory ~%s on the gateway's side (%.0f B per socket, measured here)",
				p.Target, project.HumanBytes(p.Value), project.HumanBytes(perSock*p.Target), perSock))
		}
	} else if len(row.MemPoints) > 0 {
		row.Notes = append(row.Notes, "memory slope: see the first scenario (this gateway's RSS already holds what earlier scenarios left)")
	}
	r.scenarioNotes(row, st)
	return row, nil
}

// projection fits RSS against connections from the ramp and carries it to the connections
// asked for (when the limits cut the run short) or to the reference's 100k.
func (r *runner) projection(row *report.Row) {
	if len(row.MemPoints) < 3 {
		return
	}
	fit, err := project.LeastSquares(row.MemPoints)
	if err != nil {
		return
	}
	// The limits cut the run short: project to what was asked. Otherwise, a run below the
	// reference's 100k is carried to 100k for comparison with it.
	target := float64(r.o.Conns)
	if r.o.Conns <= r.plan.Conns {
		target = max(target, 100000)
	}
	p := fit.To(target)
	if target <= float64(r.plan.Conns) && row.Conns >= r.plan.Conns {
		// Every connection was held and measured: the ramp's last point may count a few
		// fewer (not yet accepted), which does not make the figure a projection.
		p.Extrapolated = false
	}
	row.Projection = &p
}

func (r *runner) scenarioNotes(row *report.Row, st *scenarioState) {
	switch row.Name {
	case worker.Reconnect:
		before, after, secs := row.Metrics["reconnect_before"], row.Metrics["reconnect_after"], row.Metrics["reconnect_seconds"]
		if after >= before && before > 0 {
			row.Notes = append(row.Notes, fmt.Sprintf("reconnect storm: all %.0f connections dropped and were back in %.2fs", before, secs))
		} else {
			row.Notes = append(row.Notes, fmt.Sprintf("reconnect storm: %.0f connections dropped, only %.0f back after %.2fs", before, after, secs))
		}
	case worker.SlowRead:
		var first, peak, last uint64
		for _, s := range row.Timeline {
			if s.GatewayRSS == 0 {
				continue
			}
			if first == 0 {
				first = s.GatewayRSS
			}
			peak = max(peak, s.GatewayRSS)
			last = s.GatewayRSS
		}
		closed := row.ConnsLost
		if peak > 0 {
			row.Notes = append(row.Notes, fmt.Sprintf("slow readers: gateway RSS %s at start, peak %s, %s at end; %d connections closed by the gateway",
				project.HumanBytes(float64(first)), project.HumanBytes(float64(peak)), project.HumanBytes(float64(last)), closed))
		} else {
			row.Notes = append(row.Notes, fmt.Sprintf("slow readers: %d connections closed by the gateway (no gateway stats to show its memory)", closed))
		}
	case worker.Idle:
		row.Notes = append(row.Notes, fmt.Sprintf("idle: PING every %v on every connection; latency is PING to PONG", r.o.PingEvery))
	case worker.Push:
		m := func(k string) uint64 { return uint64(row.Metrics[k]) }
		row.Notes = append(row.Notes, fmt.Sprintf("push: %d published (of %d attempts), %d received, %d processed, %d acked; "+
			"%d forced reconnects brought %d redeliveries, %d duplicates dropped, %d stale, %d epoch resets; LOST %d (must be 0); "+
			"latency is publish to receipt",
			m(worker.MetricPushPublished), row.Sent, m(worker.MetricPushReceived), m(worker.MetricPushProcessed),
			m(worker.MetricPushAcked), m(worker.MetricPushReconnects), m(worker.MetricPushRedelivered),
			m(worker.MetricPushDuplicates), m(worker.MetricPushStale), m(worker.MetricPushResets), m(worker.MetricPushLost)))
	}
	if row.Conns < r.plan.Conns && row.Name != worker.Reconnect {
		row.Notes = append(row.Notes, fmt.Sprintf("held %d of %d connections attempted (see errors)", row.Conns, r.plan.Conns))
	}
}
