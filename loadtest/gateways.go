package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/project"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// gwMaxMisses is how many seconds in a row a gateway process may leave /v1/stats
// unanswered before the run fails: one slow answer on a loaded box is not a dead gateway.
const gwMaxMisses = 10

// gwProc is one gateway process the run reads /v1/stats from (-stats is a comma list when
// several processes share the listener).
type gwProc struct {
	addr   string // as given to -stats
	url    string
	pid    int
	local  bool // on this box: its pid and /proc/<pid> mean something here
	nofile uint64
	idle   observe.GatewayStats // before the run's first connection
}

func (g *gwProc) String() string {
	if g.pid > 0 {
		return fmt.Sprintf("gateway process %s (pid %d)", g.addr, g.pid)
	}
	return "gateway process " + g.addr
}

// parseStats splits -stats into its addresses; each must be given once.
func parseStats(s string) ([]*gwProc, error) {
	var out []*gwProc
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u := observe.StatsURL(a)
		if seen[u] {
			return nil, fmt.Errorf("-stats: %s given twice", a)
		}
		seen[u] = true
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("-stats %q: %w", a, err)
		}
		out = append(out, &gwProc{addr: a, url: u, local: isLoopback(p.Host)})
	}
	return out, nil
}

// gatewayNofile reads one gateway's stats and its open-file limit: the kernel's word
// (/proc/<pid>/limits) when the gateway runs on this box, else the gateway's own.
func gatewayNofile(ctx context.Context, c *http.Client, statsURL string, local bool) (observe.GatewayStats, uint64, error) {
	st, err := observe.FetchStats(ctx, c, statsURL, 2*time.Second)
	if err != nil {
		return st, 0, err
	}
	n := st.OpenFilesLimit
	// A remote pid names some other local process.
	if local && st.PID > 0 {
		if k, err := observe.ProcNofile(st.PID); err == nil {
			n = k
		}
	}
	return st, n, nil
}

// openGateways reads every gateway process once before the first connection: its pid, its
// open-file limit and its idle figures. It returns the smallest limit (the one that caps
// connections per process) and the engine the first reports.
func (r *runner) openGateways(ctx context.Context) (nofile uint64, engine string, err error) {
	pids := map[int]string{}
	for i, g := range r.gws {
		st, n, err := gatewayNofile(ctx, r.http, g.url, g.local)
		if err != nil {
			return 0, "", fmt.Errorf("-stats: %w", err)
		}
		if other, ok := pids[st.PID]; ok && st.PID > 0 && g.local {
			return 0, "", fmt.Errorf("-stats: %s and %s are the same process (pid %d)", other, g.addr, st.PID)
		}
		pids[st.PID] = g.addr
		g.pid, g.nofile, g.idle = st.PID, n, st
		if i == 0 || (n > 0 && n < nofile) {
			nofile = n
		}
		if i == 0 {
			engine = st.Engine
		}
	}
	return nofile, engine, nil
}

// gwState is one scenario's view of the gateway processes, per process.
type gwState struct {
	fail    context.CancelCauseFunc // ends the scenario, named, when a process dies
	err     error
	misses  []int
	prevCPU []float64 // CPU seconds at the last complete sample
	prevAt  time.Time
	goCPU   []float64 // at the start of the measured phase
	goAt    time.Time
	endCPU  []float64 // at its end
	endAt   time.Time
	peak    []report.GatewayProc // peaks during the measured phase
	// A process's CPU seconds as a counter that survives a hot upgrade: the new process
	// counts from zero, so the old one's last figure is carried (cpuBase); without it the
	// upgrade scenario's CPU came out negative.
	cpuPID  []int
	cpuRaw  []float64 // the last figure read, of the process cpuPID names
	cpuBase []float64
}

// cpuOf is process i's CPU seconds (gs.CPUSeconds), carried across a change of pid.
func (g *gwState) cpuOf(i int, gs *observe.GatewayStats) float64 {
	if g.cpuPID == nil {
		n := len(g.misses)
		g.cpuPID, g.cpuRaw, g.cpuBase = make([]int, n), make([]float64, n), make([]float64, n)
	}
	if g.cpuPID[i] != 0 && gs.PID != g.cpuPID[i] {
		g.cpuBase[i] += g.cpuRaw[i] // what the old process used after that is not known
	}
	g.cpuPID[i], g.cpuRaw[i] = gs.PID, gs.CPUSeconds
	return g.cpuBase[i] + gs.CPUSeconds
}

// sampleGateways reads every gateway process (at once: a slow one must not delay the
// others' second), sums their figures into s, and fails the scenario when one died, was
// restarted, or stopped answering. A second in which some process did not answer carries
// no gateway figures: a partial sum would read as a drop.
func (r *runner) sampleGateways(ctx context.Context, st *scenarioState, s *report.Sample, now time.Time, ramping bool) {
	n := len(r.gws)
	if n == 0 {
		return
	}
	g := &st.gw
	if g.misses == nil {
		g.misses, g.peak = make([]int, n), make([]report.GatewayProc, n)
	}
	stats := make([]observe.GatewayStats, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range r.gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = observe.FetchStats(ctx, r.http, p.url, 800*time.Millisecond)
		}()
	}
	wg.Wait()
	complete := true
	for i, p := range r.gws {
		if errs[i] == nil && p.pid > 0 && stats[i].PID != p.pid {
			if !st.upgradeAt.IsZero() && n == 1 {
				// The hot upgrade this scenario asked for: the new process took over.
				r.upgraded(st, p, &stats[i], now)
			} else {
				errs[i] = fmt.Errorf("restarted: now pid %d", stats[i].PID)
				g.failWith(fmt.Errorf("%s: %w", p, errs[i]))
			}
		}
		if errs[i] == nil {
			g.misses[i] = 0
			continue
		}
		complete = false
		if ctx.Err() != nil {
			continue // the scenario is being stopped: not the gateway's fault
		}
		g.misses[i]++
		switch {
		case p.local && p.pid > 0 && syscall.Kill(p.pid, 0) == syscall.ESRCH:
			g.failWith(fmt.Errorf("%s exited", p))
		case errors.Is(errs[i], syscall.ECONNREFUSED):
			g.failWith(fmt.Errorf("%s refuses connections to /v1/stats (exited?): %w", p, errs[i]))
		case g.misses[i] >= gwMaxMisses:
			g.failWith(fmt.Errorf("%s stopped answering /v1/stats (%d s in a row): %w", p, g.misses[i], errs[i]))
		}
	}
	if !complete {
		return
	}
	st.gwSeen = true
	var cpu float64
	cpus := make([]float64, n)
	pss := make([]uint64, n)
	for i, p := range r.gws {
		if p.local && p.pid > 0 {
			pss[i], _ = observe.ProcPSS(p.pid) // 0 when not readable: then no sum is shown
		}
	}
	for i := range stats {
		gs := &stats[i]
		s.GatewayPSS += pss[i]
		s.GatewayRSS += gs.RSSBytes
		s.GatewayGor += gs.Goroutines
		s.GatewayCon += gs.ConnectionsTotal
		s.GatewayWait = max(s.GatewayWait, gs.Admission.QueueWaitMs)
		cpus[i] = g.cpuOf(i, gs)
		cpu += cpus[i]
	}
	if !st.lastCPUAt.IsZero() {
		if dt := now.Sub(st.lastCPUAt).Seconds(); dt > 0 {
			s.GatewayCPU = (cpu - st.lastCPU) / dt * 100
		}
	}
	// The summed CPU over the measured phase runs from the last sample before it (as
	// maybeMeasure takes st.lastCPU) to the last one within it; so does each process's.
	measuring := !st.tGo.IsZero() && st.tEnd.IsZero()
	if measuring && g.goCPU == nil && g.prevCPU != nil {
		g.goCPU, g.goAt = g.prevCPU, g.prevAt
	}
	st.lastCPU, st.lastCPUAt = cpu, now
	g.prevCPU, g.prevAt = cpus, now
	if measuring {
		st.cpuEnd, st.cpuEndAt = cpu, now
		g.endCPU, g.endAt = cpus, now
	}
	if s.Phase == "load" { // the samples finish takes the summed peaks from
		for i, gs := range stats {
			pk := &g.peak[i]
			pk.RSSBytes = max(pk.RSSBytes, gs.RSSBytes)
			pk.PSSBytes = max(pk.PSSBytes, pss[i])
			pk.Goroutines = max(pk.Goroutines, gs.Goroutines)
			pk.Conns = max(pk.Conns, gs.ConnectionsTotal)
		}
	}
	st.row.Gateway.PID = stats[0].PID
	st.row.Gateway.Nofile = r.gwNofile
	if ramping {
		st.row.MemPoints = append(st.row.MemPoints, project.Point{X: float64(s.GatewayCon), Y: float64(s.GatewayRSS)})
	}
}

func (g *gwState) failWith(err error) {
	if g.err != nil {
		return
	}
	g.err = err
	if g.fail != nil {
		g.fail(err)
	}
}

// summariseGateways adds to the row what only several processes have: how many, each
// one's own figures, the idle baseline and the cost per connection over it.
func (r *runner) summariseGateways(st *scenarioState, row *report.Row) {
	if len(r.gws) == 0 || !row.Gateway.Available {
		return
	}
	gw := &row.Gateway
	gw.Procs = len(r.gws)
	g := &st.gw
	for i, p := range r.gws {
		pp := report.GatewayProc{Admin: p.addr, PID: p.pid, Nofile: p.nofile, IdleRSSBytes: p.idle.RSSBytes}
		if g.peak != nil {
			pk := g.peak[i]
			pp.RSSBytes, pp.PSSBytes, pp.Goroutines, pp.Conns = pk.RSSBytes, pk.PSSBytes, pk.Goroutines, pk.Conns
		}
		if dt := g.endAt.Sub(g.goAt).Seconds(); dt > 0 && g.goCPU != nil && g.endCPU != nil {
			pp.CPUPercent = (g.endCPU[i] - g.goCPU[i]) / dt * 100
		}
		gw.Processes = append(gw.Processes, pp)
		gw.IdleRSSBytes += p.idle.RSSBytes
		gw.IdleGoroutines += p.idle.Goroutines
	}
	if row.Conns > 0 && gw.RSSBytes > 0 {
		gw.PerConnBytes = (float64(gw.RSSBytes) - float64(gw.IdleRSSBytes)) / float64(row.Conns)
	}
}

// gatewayTotals reads every gateway process once and sums what overload looks at.
func (r *runner) gatewayTotals(ctx context.Context) (observe.GatewayStats, error) {
	var sum observe.GatewayStats
	for _, p := range r.gws {
		gs, err := observe.FetchStats(ctx, r.http, p.url, time.Second)
		if err != nil {
			return sum, fmt.Errorf("%s: %w", p, err)
		}
		sum.InFlight += gs.InFlight
		sum.Goroutines += gs.Goroutines
	}
	if len(r.gws) == 0 {
		return sum, errors.New("no -stats")
	}
	return sum, nil
}

// gatewayNote says how many gateway processes held the connections and why.
func gatewayNote(procs int, nofile uint64, conns int) string {
	room := int(nofile) - GatewayFDMargin
	per := gatewayCapacity(nofile, procs) / procs
	return fmt.Sprintf("%d gateway processes shared the MMTP listener (reuse_port) to hold %d connections: each may open %d files, %d of them kept for listeners, upstream and epoll, so it has room for %d; SO_REUSEPORT hands connections out by a hash of their addresses, not evenly, so each process was planned for at most %d (its share plus %d standard deviations): %d each on average, %.0f%% of its room",
		procs, conns, nofile, GatewayFDMargin, room, per, spreadSigmas, conns/procs, 100*float64(conns)/float64(procs*room))
}

// upgradeNow sends the gateway SIGUSR2 halfway through the upgrade scenario's measured
// phase. Only a single gateway process on this box can be signalled; anything else fails
// the scenario, named.
func (r *runner) upgradeNow(st *scenarioState, now time.Time) {
	if st.name != worker.Upgrade || !st.upgradeAt.IsZero() || st.tGo.IsZero() || !st.tEnd.IsZero() ||
		now.Sub(st.tGo) < r.o.Duration/2 {
		return
	}
	st.upgradeAt = now
	if len(r.gws) != 1 || !r.gws[0].local || r.gws[0].pid <= 0 {
		st.gw.failWith(errors.New("-scenario upgrade: -stats must name the one gateway process on this box, to signal it"))
		return
	}
	p := r.gws[0]
	st.row.Metrics = mergeMetric(st.row.Metrics, "upgrade_old_pid", float64(p.pid))
	if err := syscall.Kill(p.pid, syscall.SIGUSR2); err != nil {
		st.gw.failWith(fmt.Errorf("%s: SIGUSR2: %w", p, err))
		return
	}
	fmt.Fprintf(r.o.Progress, "[%s] SIGUSR2 sent to %s\n", st.name, p)
}

// upgraded records the new process of a hot upgrade and reads it from now on.
func (r *runner) upgraded(st *scenarioState, p *gwProc, gs *observe.GatewayStats, now time.Time) {
	secs := now.Sub(st.upgradeAt).Seconds()
	st.row.Notes = append(st.row.Notes, fmt.Sprintf("hot upgrade: SIGUSR2 to pid %d; pid %d answered /v1/stats %.1fs later with %d inherited connections",
		p.pid, gs.PID, secs, gs.InheritedConnections))
	st.row.Metrics = mergeMetric(st.row.Metrics, "upgrade_new_pid", float64(gs.PID))
	st.row.Metrics = mergeMetric(st.row.Metrics, "upgrade_inherited_connections", float64(gs.InheritedConnections))
	st.row.Metrics = mergeMetric(st.row.Metrics, "upgrade_seen_after_seconds", secs)
	fmt.Fprintf(r.o.Progress, "[%s] the gateway is now pid %d (inherited %d connections)\n", st.name, gs.PID, gs.InheritedConnections)
	p.pid = gs.PID
}

func mergeMetric(m map[string]float64, k string, v float64) map[string]float64 {
	if m == nil {
		m = map[string]float64{}
	}
	m[k] = v
	return m
}
