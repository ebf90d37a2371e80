package loadtest

import (
	"context"
	"fmt"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// msgExit is the parent's own marker that a worker process ended.
const msgExit = "exit"

// stopGrace is how long workers get to send their final message after "stop".
const stopGrace = 15 * time.Second

// scenarioState is one scenario's bookkeeping in the parent.
type scenarioState struct {
	name     string
	index    int // position in the run; only the first starts from a fresh gateway
	procs    []*worker.Proc
	latest   []worker.Msg // last tick/ready per worker: cumulative counters
	finals   map[int]worker.Msg
	dead     map[int]string
	ready    int
	interval *hist.Histogram // merged interval histograms since the last sample

	// t0: start; tSent: "go" sent (warm-up, if any, begins); tGo: the measured phase
	// begins; tEnd: the first final report arrived.
	t0, tSent, tGo, tEnd time.Time
	measuring            int // workers past their warm-up
	lastOK               uint64
	lastT                time.Time
	lastCPU              float64
	lastCPUAt            time.Time
	cpuGo                float64
	cpuGoAt              time.Time
	cpuEnd               float64
	cpuEndAt             time.Time
	k0                   observe.Kernel
	kEnd                 observe.Kernel
	row                  *report.Row
	clientCPU            float64 // summed worker CPU seconds at the last sample
	clientCPUAt          time.Time
	gwSeen               bool
	upgradeAt            time.Time // upgrade scenario: when SIGUSR2 went to the gateway
	stopping             bool
	gw                   gwState
}

func (r *runner) scenario(parent context.Context, name string, idx int) (*report.Row, error) {
	// A gateway process that dies or stops answering stops the scenario as Ctrl-C does,
	// and is its error.
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	specs := r.specs(name, idx)
	st := &scenarioState{name: name, index: idx, latest: make([]worker.Msg, len(specs)), finals: map[int]worker.Msg{},
		dead: map[int]string{}, interval: hist.New(), t0: time.Now(),
		row: &report.Row{Name: name, Engine: r.o.Label, TargetQPS: r.targetQPS(name), Errors: map[string]uint64{}}}
	st.lastT = st.t0
	st.gw.fail = fail
	st.k0, _ = observe.ReadKernel()
	msgs := make(chan worker.Msg, 1024)
	for _, sp := range specs {
		p, err := worker.Start(r.o.Launcher, sp, msgs)
		if err != nil {
			for _, q := range st.procs {
				q.Kill()
			}
			return nil, err
		}
		st.procs = append(st.procs, p)
		go func(p *worker.Proc) {
			<-p.Done()
			msgs <- worker.Msg{Type: msgExit, Worker: p.Index}
		}(p)
	}
	// The gateway's baseline, before any connection of this scenario: the first memory point.
	r.sample(ctx, st, true)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var grace <-chan time.Time
	done := ctx.Done()
	exited := 0
	for exited < len(st.procs) {
		select {
		case m := <-msgs:
			switch m.Type {
			case worker.MsgTick:
				st.latest[m.Worker] = m
				if !st.tSent.IsZero() {
					st.interval.Merge(m.Hist)
				}
			case worker.MsgMeasure:
				st.latest[m.Worker] = m
				st.measuring++
				r.maybeMeasure(st)
			case worker.MsgReady:
				st.latest[m.Worker] = m
				st.ready++
				r.maybeGo(st)
			case worker.MsgFinal:
				st.finals[m.Worker] = m
				if st.tEnd.IsZero() {
					// The gateway as the measured phase ends, however short it was.
					if !st.tGo.IsZero() {
						r.sample(context.WithoutCancel(ctx), st, false)
					}
					st.tEnd = time.Now()
				}
			case worker.MsgFatal:
				st.dead[m.Worker] = m.Error
				fmt.Fprintf(r.o.Progress, "[%s] worker %d: %s\n", name, m.Worker, m.Error)
				r.maybeGo(st)
				r.maybeMeasure(st)
			case msgExit:
				exited++
				if _, ok := st.finals[m.Worker]; !ok {
					if _, ok := st.dead[m.Worker]; !ok {
						st.dead[m.Worker] = "exited without a final report: " + fmt.Sprint(st.procs[m.Worker].Err())
						r.maybeGo(st)
						r.maybeMeasure(st)
					}
				}
			}
			if len(st.finals)+len(st.dead) == len(st.procs) && !st.stopping {
				// every worker reported: let them exit
				for _, p := range st.procs {
					p.CloseInput()
				}
				st.stopping = true
			}
		case <-tick.C:
			r.sample(ctx, st, st.tSent.IsZero())
		case <-done:
			done = nil
			st.stopping = true
			why := "interrupted"
			if st.gw.err != nil {
				why = st.gw.err.Error()
			}
			fmt.Fprintf(r.o.Progress, "[%s] %s: stopping workers, collecting what they measured\n", name, why)
			for _, p := range st.procs {
				p.Send(worker.CmdStop)
				p.CloseInput()
			}
			grace = time.After(stopGrace)
		case <-grace:
			for _, p := range st.procs {
				p.Kill()
			}
			grace = nil
		}
	}
	r.sample(context.WithoutCancel(ctx), st, false)
	row, err := r.finish(st)
	if st.gw.err != nil && parent.Err() == nil {
		return row, st.gw.err
	}
	return row, err
}

// maybeGo sends "go" once every live worker has ramped. Without a warm-up the measured
// phase starts then; with one, when every worker reports it is past it.
func (r *runner) maybeGo(st *scenarioState) {
	if !st.tSent.IsZero() || st.stopping || st.ready < len(st.procs)-len(st.dead) || st.ready == 0 {
		return
	}
	// The last point on the way up: every connection open, no request yet.
	r.sample(context.Background(), st, true)
	st.tSent = time.Now()
	st.row.RampSeconds = st.tSent.Sub(st.t0).Seconds()
	open := 0
	for _, m := range st.latest {
		open += m.Snap.Open
	}
	warm := ""
	if r.warmup(st.name) > 0 {
		warm = fmt.Sprintf(" after a %v warm-up", r.warmup(st.name))
	}
	fmt.Fprintf(r.o.Progress, "[%s] ramp done: %d connections in %.1fs; measuring %v%s\n", st.name, open, st.row.RampSeconds, r.o.Duration, warm)
	for _, p := range st.procs {
		p.Send(worker.CmdGo)
	}
	if r.warmup(st.name) == 0 {
		st.measuring = len(st.procs)
		r.maybeMeasure(st)
	}
}

// maybeMeasure starts the measured phase once every live worker is in it.
func (r *runner) maybeMeasure(st *scenarioState) {
	if !st.tGo.IsZero() || st.tSent.IsZero() || st.measuring == 0 || st.measuring < len(st.procs)-len(st.dead) {
		return
	}
	st.tGo = time.Now()
	st.cpuGo, st.cpuGoAt = st.lastCPU, st.lastCPUAt
	st.interval.Reset()
	st.lastOK = 0 // workers restarted their counters
	if r.warmup(st.name) > 0 {
		fmt.Fprintf(r.o.Progress, "[%s] warm-up done; measuring\n", st.name)
	}
}

// warmup is the warm-up of scenario sc: only steady has one (the other scenarios measure
// a transient on purpose, or send no requests).
func (r *runner) warmup(sc string) time.Duration {
	if sc == worker.Steady || sc == worker.Upgrade {
		return r.o.Warmup
	}
	return 0
}

// sample takes one second's figures: the workers' counters, the merged interval
// histogram, the gateway's stats and the kernel's.
func (r *runner) sample(ctx context.Context, st *scenarioState, ramping bool) {
	now := time.Now()
	r.upgradeNow(st, now)
	s := report.Sample{T: now.Sub(st.t0).Seconds(), Phase: "load"}
	switch {
	case ramping:
		s.Phase = "ramp"
	case !st.tEnd.IsZero():
		s.Phase = "end"
	case st.tGo.IsZero():
		s.Phase = "warmup"
	}
	var ok, errs uint64
	for _, m := range st.latest {
		s.Conns += m.Snap.Open
		ok += m.Snap.OK
		for _, v := range m.Snap.Errors {
			errs += v
		}
	}
	// Ticks arrive once a second; over a shorter span the rate would be an artefact.
	if dt := now.Sub(st.lastT).Seconds(); dt >= 0.5 && ok >= st.lastOK {
		s.QPS = float64(ok-st.lastOK) / dt
	}
	st.lastOK, st.lastT = ok, now
	s.Errors = errs
	if st.interval.Count() > 0 {
		s.P50, s.P99, s.P999, s.Max = st.interval.Percentile(50), st.interval.Percentile(99), st.interval.Percentile(99.9), st.interval.Max()
		st.interval.Reset()
	}
	r.sampleGateways(ctx, st, &s, now, ramping)
	var ccpu float64
	for _, p := range st.procs {
		if c, err := observe.ProcCPU(p.PID()); err == nil {
			ccpu += c
		}
		if rss, err := observe.ProcRSS(p.PID()); err == nil {
			s.ClientRSS += rss
		}
	}
	if !st.clientCPUAt.IsZero() {
		if dt := now.Sub(st.clientCPUAt).Seconds(); dt > 0 && ccpu >= st.clientCPU {
			s.ClientCPU = (ccpu - st.clientCPU) / dt * 100
		}
	}
	st.clientCPU, st.clientCPUAt = ccpu, now
	if k, err := observe.ReadKernel(); err == nil {
		s.KernelTCP = k.TCPMemBytes
		s.KernelSock = k.TCPInuse
		s.KernelSlab = k.SlabTotal() - st.k0.SlabTotal()
		st.kEnd = k
	}
	st.row.Timeline = append(st.row.Timeline, s)
	r.progress(st, s, ramping)
}

// targetQPS is what a scenario offers per second: -rate, but for idle, whose connections
// each PING once every -ping-every (it carried -rate, which idle does not send).
func (r *runner) targetQPS(scenario string) float64 {
	if scenario == worker.Idle {
		if r.o.PingEvery <= 0 {
			return 0
		}
		return float64(r.plan.Conns) / r.o.PingEvery.Seconds() // the connections held
	}
	return r.o.Rate
}
