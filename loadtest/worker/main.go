package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/openloop"
	"github.com/mgw-project/mgw/netpoll"
)

// Main runs one worker: it reads a Spec line from in, ramps its connections, reports
// ready, waits for "go", runs the scenario, and writes a final message. It returns the
// process exit code. It stops early, still writing a final message, on "stop" or EOF.
func Main(in io.Reader, out io.Writer) int {
	w := &runner{enc: json.NewEncoder(out)}
	rd := bufio.NewReaderSize(in, 64<<10)
	line, err := rd.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		w.fatal(fmt.Errorf("reading spec: %w", err))
		return 2
	}
	if err := json.Unmarshal(line, &w.spec); err != nil {
		w.fatal(fmt.Errorf("spec: %w", err))
		return 2
	}
	cmds := make(chan string, 4)
	go func() {
		defer close(cmds)
		for {
			l, err := rd.ReadString('\n')
			if s := strings.TrimSpace(l); s != "" {
				cmds <- s
			}
			if err != nil {
				return
			}
		}
	}()
	if err := w.run(cmds); err != nil {
		w.fatal(err)
		return 1
	}
	return 0
}

type runner struct {
	spec Spec
	enc  *json.Encoder
	mu   sync.Mutex // serialises writes to out
	cl   *client.Client
	rec  *hist.Recorder
}

func (w *runner) send(m Msg) {
	m.Worker = w.spec.Index
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}

func (w *runner) fatal(err error) { w.send(Msg{Type: MsgFatal, Error: err.Error()}) }

func (w *runner) run(cmds <-chan string) error {
	s := &w.spec
	if !KnownScenario(s.Scenario) {
		return fmt.Errorf("scenario %q: unknown", s.Scenario)
	}
	if s.Nice > 0 {
		if err := yieldCPU(s.Nice); err != nil {
			return err
		}
	}
	if s.Procs > 0 {
		runtime.GOMAXPROCS(s.Procs)
	}
	var srcs []netip.Addr
	for _, a := range s.Sources {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("source %q: %w", a, err)
		}
		srcs = append(srcs, ip)
	}
	// Receive stamps date each answer by its arrival, not by when this process, which may
	// share the box (and its CPUs) with the target, got round to reading it.
	ecfg := netpoll.Config{Pollers: s.Pollers, Workers: s.PoolSize, MaxConns: s.Conns + 16, KeepAlive: -1,
		RxTimestamps: true}
	eng, err := netpoll.New(ecfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	w.rec = hist.NewRecorder()
	w.cl, err = client.New(client.Config{Target: s.Target, Protocol: s.Protocol, API: s.API, Body: s.Body,
		AppID: s.AppID, Secret: s.Secret, Hello: s.Hello, Timeout: s.Timeout, SourceAddrs: srcs,
		ConnOffset: s.ConnOffset, OKLatencyOnly: s.Scenario == Overload, Push: s.Push, RxTimestamps: ecfg.RxTimestamps}, s.Conns, eng, w.rec)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := false
	goCh := make(chan struct{})
	go func() {
		gone := false
		for c := range cmds {
			switch c {
			case CmdGo:
				if !gone {
					gone = true
					close(goCh)
				}
			case CmdStop:
				cancel()
			}
		}
		cancel() // EOF: the parent is gone or done with us
	}()

	phase := "ramp"
	var phaseMu sync.Mutex
	tickDone := make(chan struct{})
	go func() {
		// Ticks four times a second so the parent's once-a-second samples are never more
		// than a quarter second stale (a 1 s tick beating against a 1 s sample made the live
		// QPS swing between 0 and twice the rate); timeouts are swept once a second.
		t := time.NewTicker(TickEvery)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-tickDone:
				return
			case now := <-t.C:
				if n%int(time.Second/TickEvery) == 0 {
					w.cl.Sweep(now)
				}
				phaseMu.Lock()
				p := phase
				phaseMu.Unlock()
				w.send(Msg{Type: MsgTick, Phase: p, Snap: w.cl.Snapshot(), Hist: w.rec.Interval()})
			}
		}
	}()
	setPhase := func(p string) { phaseMu.Lock(); phase = p; phaseMu.Unlock() }

	w.cl.Ramp(ctx, s.Ramp, nil)
	w.send(Msg{Type: MsgReady, Phase: "ramp", Snap: w.cl.Snapshot()})
	select {
	case <-goCh:
	case <-ctx.Done():
		stopped = true
	}
	metrics := map[string]float64{MetricHarnessProcs: float64(runtime.GOMAXPROCS(0))}
	if !stopped {
		w.rec.Reset()
		setPhase("load")
		if err := w.scenario(ctx, metrics); err != nil {
			close(tickDone)
			return err
		}
		setPhase("drain")
		w.drain(ctx)
	}
	close(tickDone)
	w.cl.SweepAll(!stopped && ctx.Err() == nil) // whatever is still unanswered is a timeout
	w.cl.FinishPings()
	snap, hist := w.settled()
	w.send(Msg{Type: MsgFinal, Phase: "done", Snap: snap, Hist: hist, Metrics: metrics})
	// Hold the connections until the parent has read the gateway one last time and closes
	// our stdin: closing them now would put the gateway's teardown into that reading.
	select {
	case <-ctx.Done():
	case <-time.After(finalHold):
	}
	return nil
}

// finalHold bounds how long a worker keeps its connections after its final report.
const finalHold = 30 * time.Second

// drain waits for answers in flight, up to the request timeout (at most 5 s).
func (w *runner) drain(ctx context.Context) {
	deadline := time.Now().Add(min(w.spec.Timeout, 5*time.Second))
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if w.cl.InFlight() == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *runner) load(ctx context.Context, start time.Time) {
	w.loadFor(ctx, start, w.spec.Duration, 0)
}

// loadFor drives the request rate for d from start (seed offset so a warm-up and the
// measured phase draw different arrivals).
func (w *runner) loadFor(ctx context.Context, start time.Time, d time.Duration, seedOff uint64) {
	s := &w.spec
	if s.Rate <= 0 {
		<-waitCtx(ctx, d)
		return
	}
	a, _ := openloop.ParseArrival(s.Arrival)
	sched, err := openloop.NewSchedule(a, s.Rate, s.Seed+seedOff)
	if err != nil {
		return
	}
	openloop.RunBatched(ctx, sched, start, d, w.cl.FireQueued, w.cl.Flush)
}

func waitCtx(ctx context.Context, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		close(ch)
	}()
	return ch
}

func (w *runner) scenario(ctx context.Context, metrics map[string]float64) error {
	s := &w.spec
	start := time.Now()
	switch s.Scenario {
	case Steady, Upgrade:
		if s.Warmup > 0 {
			w.loadFor(ctx, start, s.Warmup, 1)
			w.drain(ctx)
			w.cl.SweepAll(false)
			w.rec.Reset() // first, as RunClosed does: a latency too many, never a call
			w.cl.ResetCounters()
			w.send(Msg{Type: MsgMeasure, Phase: "load", Snap: w.cl.Snapshot()})
			start = time.Now()
		}
		w.load(ctx, start)
	case Overload:
		w.load(ctx, start)
		w.drain(ctx)
		mx, slow := w.cl.Refusals()
		metrics[MetricRefusalMaxMs] = float64(mx) / 1e6
		metrics[MetricRefusalsOver10ms] = float64(slow)
		metrics[MetricSendLateMaxMs] = float64(w.cl.Lateness()) / 1e6
		smx, sslow := w.cl.SentRefusals()
		metrics[MetricSentRefusalMaxMs] = float64(smx) / 1e6
		metrics[MetricSentRefusalsOver10ms] = float64(sslow)
	case SlowRead:
		w.cl.PauseReads()
		w.load(ctx, start)
	case Idle:
		// Each connection PINGs once per period, the connections staggered evenly: a
		// schedule of open/period PINGs a second, round robin over the connections.
		every := s.PingEvery
		if every <= 0 {
			every = 5 * time.Second
		}
		open := w.cl.Snapshot().Open
		if open == 0 {
			<-waitCtx(ctx, s.Duration)
			return nil
		}
		rate := float64(open) / every.Seconds()
		sched, err := openloop.NewSchedule(openloop.Constant, min(rate, openloop.MaxRate), s.Seed)
		if err != nil {
			return err
		}
		openloop.Run(ctx, sched, start, s.Duration, w.cl.PingNext)
	case Push:
		if s.Push == nil {
			return fmt.Errorf("scenario %s: the spec has no push settings", Push)
		}
		w.push(ctx, start, metrics)
	case Reconnect:
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.load(ctx, start) }()
		before := w.cl.Snapshot().Open
		t0 := time.Now()
		w.cl.CloseAll()
		for w.cl.Snapshot().Open > 0 && time.Since(t0) < 5*time.Second {
			time.Sleep(time.Millisecond)
		}
		w.cl.Ramp(ctx, 0, nil)
		metrics["reconnect_seconds"] = time.Since(t0).Seconds()
		metrics["reconnect_before"] = float64(before)
		metrics["reconnect_after"] = float64(w.cl.Snapshot().Open)
		wg.Wait()
	}
	return nil
}

// pushDrain bounds how long the push scenario waits, after the last publish, for devices
// to receive what was published (crashed ones must come back first).
const pushDrain = 10 * time.Second

// push publishes at the spec's rate for its duration while devices that dropped their
// connection are dialled again, then waits until every published push was processed
// (or pushDrain passed) and reports the figures.
func (w *runner) push(ctx context.Context, start time.Time, metrics map[string]float64) {
	s := &w.spec
	rctx, stopRedial := context.WithCancel(ctx)
	redialed := make(chan struct{})
	go func() { defer close(redialed); w.cl.KeepDialed(rctx, 100*time.Millisecond) }()
	a, _ := openloop.ParseArrival(s.Arrival)
	if sched, err := openloop.NewSchedule(a, s.Rate, s.Seed); err == nil {
		openloop.Run(ctx, sched, start, s.Duration, w.cl.Publish)
	}
	w.cl.WaitPublished()
	deadline := time.Now().Add(min(s.Timeout, pushDrain))
	for time.Now().Before(deadline) && ctx.Err() == nil && w.cl.PushFigures().Lost > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	stopRedial()
	<-redialed
	PushMetrics(w.cl.PushFigures(), metrics)
}

// settled takes the final counters and histogram once they stop moving. An answer a
// reactor worker was recording as the run stopped (its latency in, its OK not yet
// counted) made the two disagree in the final report; SweepAll leaves at most such
// answers in progress, so a few milliseconds settle them.
func (w *runner) settled() (client.Snapshot, *hist.Histogram) {
	snap, h := w.cl.Snapshot(), w.rec.Total()
	for range 50 {
		time.Sleep(2 * time.Millisecond)
		s2, h2 := w.cl.Snapshot(), w.rec.Total()
		same := s2.OK == snap.OK && s2.TotalErrors() == snap.TotalErrors() && h2.Count() == h.Count()
		snap, h = s2, h2
		if same {
			break
		}
	}
	return snap, h
}
