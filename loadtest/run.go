package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// Run checks the options and the target, plans around the box's limits, and runs each
// scenario in turn. On ctx cancellation (Ctrl-C) it stops the workers, collects what they
// measured, and returns a result marked partial together with ctx's error. A result is
// returned whenever anything was measured, even with an error.
func Run(ctx context.Context, o Options) (*report.Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Launcher.Path == "" {
		if o.Launcher, err = worker.SelfLauncher(); err != nil {
			return nil, err
		}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := client.Probe(o.Target, o.Protocol, 3*time.Second); err != nil {
		return nil, err
	}
	r := &runner{o: o, http: &http.Client{Timeout: 2 * time.Second}}
	if r.gws, err = parseStats(o.Stats); err != nil {
		return nil, err
	}
	if len(r.gws) > 0 {
		var engine string
		if r.gwNofile, engine, err = r.openGateways(ctx); err != nil {
			return nil, err
		}
		if r.o.Label == "" {
			r.o.Label = engine
		}
	}
	plan, lim, srcs, err := planLimits(&r.o, r.gwNofile, len(r.gws))
	if err != nil {
		return nil, err
	}
	r.plan, r.srcs = plan, srcs
	res := &report.Result{Version: report.FormatVersion, Started: time.Now(), Command: o.Command, Limits: lim,
		Params: report.Params{Target: o.Target, Protocol: o.Protocol, Conns: o.Conns, Ramp: o.Ramp, Rate: o.Rate,
			Arrival: o.Arrival, Duration: o.Duration, API: o.API, BodyBytes: o.BodySize, Signed: o.Secret != "",
			Workers: len(plan.PerWorker), Scenarios: o.Scenarios}}
	for _, a := range srcs {
		res.Params.SourceAddrs = append(res.Params.SourceAddrs, a.String())
	}
	for _, n := range lim.Notes {
		fmt.Fprintf(o.Progress, "limit: %s\n", n)
	}
	if o.Nice > 0 {
		note := fmt.Sprintf("harness: worker processes at nice %d (-nice), so a gateway on the same CPUs runs first; "+
			"answers are dated by the kernel's receive stamps, not by when a worker got a CPU to read them", o.Nice)
		fmt.Fprintln(o.Progress, note)
		res.Notes = append(res.Notes, note)
	}
	load0, cpus := observe.LoadAvg()
	defer func() {
		res.Finished = time.Now()
		load1, _ := observe.LoadAvg()
		note := fmt.Sprintf("box: %d CPUs shared by the harness, the gateway and its backend; load average %.1f at start, %.1f at end",
			cpus, load0, load1)
		if max(load0, load1) > float64(cpus) {
			note += " (above the CPU count: latency and CPU figures include waiting for a CPU)"
		}
		res.Notes = append(res.Notes, note)
	}()
	for i, sc := range o.Scenarios {
		var row *report.Row
		var err error
		if sc == worker.Overload {
			var rows []report.Row
			rows, err = r.overload(ctx, i, res)
			res.Rows = append(res.Rows, rows...)
		} else {
			row, err = r.scenario(ctx, sc, i)
		}
		if row != nil {
			res.Rows = append(res.Rows, *row)
		}
		if ctx.Err() != nil {
			res.Partial, res.Reason = true, "interrupted during "+sc+": rows hold what was measured until then"
			return res, ctx.Err()
		}
		if err != nil {
			res.Partial, res.Reason = true, fmt.Sprintf("scenario %s failed: %v", sc, err)
			return res, err
		}
	}
	return res, nil
}

type runner struct {
	o        Options
	http     *http.Client
	gws      []*gwProc // the gateway processes behind the target, from -stats
	gwNofile uint64    // the smallest open-file limit among them
	plan     worker.Plan
	srcs     []netip.Addr
}

// errAllWorkersFailed is returned when no worker survived to report.
var errAllWorkersFailed = errors.New("every worker process failed")

func (r *runner) specs(sc string, idx int) []worker.Spec {
	o := &r.o
	w := len(r.plan.PerWorker)
	srcs := r.srcs
	if r.o.SourcesAuto && len(r.o.Sources) == 0 && len(srcs) > 0 && idx > 0 {
		// A fresh stretch of addresses per scenario: the previous one's TIME_WAIT sockets
		// would slow binds on the old ones.
		srcs = worker.LoopbackRange(r.plan.Conns, (r.plan.Conns+len(srcs)-1)/len(srcs), r.o.SourceSkip+idx*len(srcs))
	}
	var sources []string
	for _, a := range srcs {
		sources = append(sources, a.String())
	}
	body := make([]byte, o.BodySize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	if o.API == "demo.sleep" || o.API == "demo.size" {
		body = []byte(strings.TrimSpace(string(bodyOrNumber(o))))
	}
	hello, app := o.Hello, o.AppID
	var push *client.PushConfig
	if sc == worker.Push {
		if app == "" {
			app = "loadtest" // push is addressed to an app's device
		}
		// Push is addressed to a HELLO's device. The topic tells this run's pushes from
		// what earlier runs left in the devices' logs.
		hello = true
		push = &client.PushConfig{AdminURL: adminURL(o.Admin), Token: o.AdminToken,
			Topic: fmt.Sprintf("loadtest.push.%d.%d", time.Now().UnixNano(), idx)}
		if o.PushCrash > 0 {
			push.CrashEvery = uint64(math.Round(1 / o.PushCrash))
		}
	}
	out := make([]worker.Spec, w)
	for i := range out {
		out[i] = worker.Spec{Index: i, Conns: r.plan.PerWorker[i], ConnOffset: r.plan.Offsets[i], Target: o.Target,
			Protocol: o.Protocol, API: o.API, Body: body, AppID: app, Secret: o.Secret, Hello: hello,
			Timeout: o.Timeout, Sources: sources, Scenario: sc, Ramp: o.Ramp / float64(w), Rate: o.Rate / float64(w),
			Arrival: o.Arrival, Seed: o.Seed + uint64(idx)*1_000_003 + uint64(i)*7919, Duration: o.Duration,
			PingEvery: o.PingEvery, Warmup: r.warmup(sc), Push: push, Nice: o.Nice, Procs: o.WorkerProcs}
	}
	return out
}

// adminURL makes an admin address (host:port, or a URL) a base URL.
func adminURL(a string) string {
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	if u, err := url.Parse(a); err == nil {
		u.Path, u.RawQuery = "", "" // a -stats URL names /v1/stats; the base is wanted
		return u.String()
	}
	return a
}

// bodyOrNumber: demo.sleep and demo.size take a number as body; -body then means that
// number (milliseconds, or bytes of the answer) rather than a body of that size.
func bodyOrNumber(o *Options) []byte { return []byte(fmt.Sprint(o.BodySize)) }
