package loadtest

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/netpoll"
)

// ClosedOptions of one `mgw loadtest closed`: a throughput benchmark, the counterpart of
// wrk for MMTP. A few connections each keep Streams requests in flight; every answer sends
// the next request at once, so the target's speed sets the rate. It runs in this process
// (no workers, no ramp pacing): it is for tens of connections, not for 100k.
type ClosedOptions struct {
	Target   string // host:port
	Protocol string // mmtp (default) or http1 (then Streams must be 1: no pipelining)
	Conns    int    // default 8
	Streams  int    // requests in flight per connection; default 32 for mmtp, 1 for http1
	Duration time.Duration
	Warmup   time.Duration // the loop runs this long before the measured window
	API      string        // default demo.echo
	BodySize int           // request body bytes; for demo.size and demo.sleep the number sent
	Hello    bool
	Timeout  time.Duration // per request; default 10 s
	// PID, when above 0, is the target's process on this machine: its CPU time
	// (utime+stime from /proc/PID/stat) over the measured window gives calls per CPU second.
	PID int
}

// Limits of a closed run: connections held by one process, requests kept in flight.
const (
	MaxClosedConns   = 10_000
	MaxClosedStreams = 100_000
)

func (o ClosedOptions) withDefaults() (ClosedOptions, error) {
	switch o.Protocol {
	case "", "mmtp":
		o.Protocol = "mmtp"
	case "http", "http1":
		o.Protocol = "http1"
	default:
		return o, fmt.Errorf("-protocol %q: want mmtp or http1", o.Protocol)
	}
	if o.Hello && o.Protocol != "mmtp" {
		return o, fmt.Errorf("-hello: HELLO is MMTP; not available with -protocol %s", o.Protocol)
	}
	if err := checkTarget(o.Target); err != nil {
		return o, err
	}
	if o.Conns == 0 {
		o.Conns = 8
	}
	if o.Conns < 1 || o.Conns > MaxClosedConns {
		return o, fmt.Errorf("-conns %d: want 1..%d", o.Conns, MaxClosedConns)
	}
	if o.Streams == 0 {
		o.Streams = 32
		if o.Protocol == "http1" {
			o.Streams = 1
		}
	}
	if o.Streams < 1 || o.Streams > MaxClosedStreams {
		return o, fmt.Errorf("-streams %d: want 1..%d", o.Streams, MaxClosedStreams)
	}
	if o.Protocol == "http1" && o.Streams != 1 {
		return o, fmt.Errorf("-streams %d: HTTP/1.1 has one request in flight per connection here (no pipelining); use -conns", o.Streams)
	}
	if o.Duration <= 0 || o.Duration > MaxDuration {
		return o, fmt.Errorf("-duration %v: want more than 0 and at most %v", o.Duration, MaxDuration)
	}
	if o.Warmup < 0 || o.Warmup > MaxDuration {
		return o, fmt.Errorf("-warmup %v: want 0..%v", o.Warmup, MaxDuration)
	}
	if o.API == "" {
		o.API = "demo.echo"
	}
	if o.BodySize < 0 || o.BodySize > MaxBody {
		return o, fmt.Errorf("-body %d: want 0..%d bytes", o.BodySize, MaxBody)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Timeout < 0 {
		return o, fmt.Errorf("-timeout %v: want positive", o.Timeout)
	}
	if o.PID < 0 {
		return o, fmt.Errorf("-pid %d: want a process id, or 0 for none", o.PID)
	}
	return o, nil
}

// ClosedResult is the measured window of a closed run.
type ClosedResult struct {
	Options ClosedOptions
	Seconds float64 // length of the measured window
	Calls   uint64  // answered 2xx in the window
	Sent    uint64
	Latency report.Latency // from each request's send time to its answer
	Errors  map[string]uint64
	// CPUSeconds is the target process's utime+stime over the window; -1 without a PID.
	CPUSeconds float64
}

// Rate is calls answered 2xx per second of the window.
func (r *ClosedResult) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Seconds
}

// PerCPUSecond is calls per CPU second of the target process, or 0 when not measured.
func (r *ClosedResult) PerCPUSecond() float64 {
	if r.CPUSeconds <= 0 {
		return 0
	}
	return float64(r.Calls) / r.CPUSeconds
}

// RunClosed connects, runs the closed loop for the warm-up, then measures for the duration,
// then stops the loop and lets the requests in flight finish (up to the timeout).
func RunClosed(ctx context.Context, o ClosedOptions) (*ClosedResult, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := client.Probe(o.Target, o.Protocol, 3*time.Second); err != nil {
		return nil, err
	}
	if o.PID > 0 {
		if _, err := observe.ProcCPU(o.PID); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", o.PID, err)
		}
	}
	eng, err := netpoll.New(netpoll.Config{MaxConns: o.Conns + 16, KeepAlive: -1})
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	rec := hist.NewRecorder()
	cl, err := client.New(client.Config{Target: o.Target, Protocol: o.Protocol, API: o.API, Body: closedBody(&o),
		Hello: o.Hello, Timeout: o.Timeout, DevicePrefix: "closed-"}, o.Conns, eng, rec)
	if err != nil {
		return nil, err
	}
	cl.Ramp(ctx, 0, nil)
	if sn := cl.Snapshot(); sn.Open != o.Conns {
		return nil, fmt.Errorf("%d of %d connections to %s open (errors: %v)", sn.Open, o.Conns, o.Target, sn.Errors)
	}
	defer func() {
		// Let the streams finish so the target sees clean closes, not resets mid-answer.
		cl.StopClosed()
		deadline := time.Now().Add(o.Timeout)
		for cl.InFlight() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cl.CloseAll()
	}()

	cl.StartClosed(o.Streams)
	if err := sleepSweeping(ctx, cl, o.Warmup); err != nil {
		return nil, err
	}
	// The recorder first: an answer that comes between the two resets is then counted in
	// the latencies and not in the calls (a latency too many), never the other way.
	rec.Reset()
	cl.ResetCounters()
	cpu0, cpuErr := procCPU(o.PID)
	t0 := time.Now()
	err = sleepSweeping(ctx, cl, o.Duration)
	elapsed := time.Since(t0)
	cpu1, cpuErr1 := procCPU(o.PID)
	sn := cl.Snapshot()
	res := &ClosedResult{Options: o, Seconds: elapsed.Seconds(), Calls: sn.OK, Sent: sn.Sent,
		Latency: report.Summarise(rec.Total()), Errors: sn.Errors, CPUSeconds: -1}
	if o.PID > 0 {
		if cpuErr != nil || cpuErr1 != nil {
			return res, fmt.Errorf("-pid %d: reading its CPU time: %v %v", o.PID, cpuErr, cpuErr1)
		}
		res.CPUSeconds = cpu1 - cpu0
	}
	return res, err
}

// closedBody is the request body: demo.size and demo.sleep take a number (bytes of the
// answer, milliseconds), as in `loadtest run`; any other API gets BodySize bytes.
func closedBody(o *ClosedOptions) []byte {
	if o.API == "demo.size" || o.API == "demo.sleep" {
		return []byte(strconv.Itoa(o.BodySize))
	}
	b := make([]byte, o.BodySize)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func procCPU(pid int) (float64, error) {
	if pid <= 0 {
		return 0, nil
	}
	return observe.ProcCPU(pid)
}

// sleepSweeping waits d, counting requests older than the timeout once a second.
func sleepSweeping(ctx context.Context, cl *client.Client, d time.Duration) error {
	end := time.Now().Add(d)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			cl.Sweep(now)
		case <-time.After(left):
			return nil
		}
	}
}

// Write prints the result for a reader, then one `result` line of key=value fields
// (no spaces inside a value) for scripts.
func (r *ClosedResult) Write(w io.Writer) {
	o := &r.Options
	fmt.Fprintf(w, "closed loop: %d conns x %d streams, %s %s (body %d) to %s, %.2f s measured after %v warm-up\n",
		o.Conns, o.Streams, o.Protocol, o.API, o.BodySize, o.Target, r.Seconds, o.Warmup)
	fmt.Fprintf(w, "calls    %d ok of %d sent, %.0f/s\n", r.Calls, r.Sent, r.Rate())
	l := r.Latency
	fmt.Fprintf(w, "latency  p50 %s  p99 %s  p99.9 %s  max %s (send to answer)\n",
		report.FmtDur(l.P50), report.FmtDur(l.P99), report.FmtDur(l.P999), report.FmtDur(l.Max))
	errs := closedErrors(r.Errors)
	fmt.Fprintf(w, "errors   %s\n", errs)
	cpu, per := "-", "-"
	if r.CPUSeconds >= 0 {
		cpu = fmt.Sprintf("%.2f", r.CPUSeconds)
		if r.CPUSeconds > 0 {
			per = fmt.Sprintf("%.0f", r.PerCPUSecond())
		}
		fmt.Fprintf(w, "target   pid %d: %s CPU s in the window, %s calls per CPU second\n", o.PID, cpu, per)
	}
	fmt.Fprintf(w, "result calls=%d seconds=%.3f rate=%.2f p50=%s p99=%s cpu_s=%s per_cpu_s=%s errors=%s\n",
		r.Calls, r.Seconds, r.Rate(), report.FmtDur(l.P50), report.FmtDur(l.P99), cpu, per, errs)
}

// closedErrors lists error kinds as kind=n joined by commas, or "0".
func closedErrors(m map[string]uint64) string {
	var parts []string
	for k, v := range m {
		if v > 0 {
			parts = append(parts, k+"="+strconv.FormatUint(v, 10))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
