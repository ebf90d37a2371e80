package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mgw-project/mgw/loadtest"
	"github.com/mgw-project/mgw/loadtest/report"
	"github.com/mgw-project/mgw/loadtest/worker"
)

const loadtestUsage = `Usage:
  mgw loadtest run -target HOST:PORT [flags]   hold N connections, drive an open-loop rate, report
  mgw loadtest compare [flags]                 start the gateway per engine (epoll, rwloop) and compare
  mgw loadtest closed -target HOST:PORT [flags] closed loop: N conns x M streams, calls per target CPU second

Run "mgw loadtest run -h", "mgw loadtest compare -h" or "mgw loadtest closed -h" for flags.
`

// runLoadtest is `mgw loadtest ...`. The hidden `worker` subcommand is how the harness
// re-executes itself to spread connections across processes.
func runLoadtest(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, loadtestUsage)
		return 2
	}
	switch args[0] {
	case "run":
		return loadtestRun(args[1:], stdout, stderr)
	case "compare":
		return loadtestCompare(args[1:], stdout, stderr)
	case "closed":
		return loadtestClosed(args[1:], stdout, stderr)
	case "worker":
		// The parent decides when to stop (it sends "stop" or closes stdin); the terminal's
		// Ctrl-C reaches the whole process group, so a worker ignores it and reports instead.
		signal.Ignore(os.Interrupt)
		return worker.Main(os.Stdin, os.Stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, loadtestUsage)
		return 0
	}
	fmt.Fprintf(stderr, "mgw loadtest: unknown subcommand %q\n\n%s", args[0], loadtestUsage)
	return 2
}

// outputs are the files a run writes.
type outputs struct {
	json, html string
}

// runFlags registers the flags shared by run and compare.
func runFlags(fs *flag.FlagSet, o *loadtest.Options, out *outputs, conns int) (scenarios, src, secretEnv *string) {
	fs.StringVar(&o.Protocol, "protocol", "mmtp", "mmtp or http1")
	fs.IntVar(&o.Conns, "conns", conns, "connections to hold (capped, and said so, when the open-file limits are lower)")
	fs.Float64Var(&o.Ramp, "ramp", 2000, "new connections per second (0: as fast as possible)")
	fs.Float64Var(&o.Rate, "rate", 1000, "requests per second across all connections (open loop)")
	fs.StringVar(&o.Arrival, "arrival", "constant", "constant or poisson")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "length of the measured phase of each scenario")
	fs.DurationVar(&o.Warmup, "warmup", 5*time.Second, "steady scenario: load this long before measuring (not in the result)")
	fs.StringVar(&o.API, "api", "demo.echo", "operation type to call (demo.sleep/demo.size take -body as a number)")
	fs.IntVar(&o.BodySize, "body", 1024, "request body bytes")
	fs.StringVar(&o.AppID, "app", "", "app id for signing")
	secretEnv = fs.String("secret-env", "", "environment variable holding the app secret (signs every request)")
	fs.BoolVar(&o.Hello, "hello", false, "send an MMTP HELLO on each connection first")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "a request unanswered this long counts as a timeout")
	scenarios = fs.String("scenario", "steady", "comma list: steady, reconnect, slowread, idle, overload, push, upgrade")
	fs.Float64Var(&o.Capacity, "capacity", 0, "overload scenario: the gateway's capacity in requests/s (0: search for the highest rate served without refusals, starting from what it answers at -rate)")
	fs.DurationVar(&o.PingEvery, "ping-every", 5*time.Second, "idle scenario: PING period per connection")
	fs.StringVar(&o.Admin, "admin", "", "push scenario: admin listener to publish through, POST /v1/push (default: -stats)")
	fs.StringVar(&o.AdminToken, "admin-token", "", "push scenario: admin bearer token (default: $MGW_ADMIN_TOKEN, which keeps it out of ps)")
	fs.Float64Var(&o.PushCrash, "push-crash", 0.01, "push scenario: share of pushes on which a device drops its connection unacknowledged, to come back (negative: none)")
	fs.IntVar(&o.Workers, "workers", 0, "least number of worker processes (more when the open-file limit needs)")
	fs.IntVar(&o.PerWorker, "per-worker", 0, "at most this many connections per worker (0: the open-file limit)")
	src = fs.String("src", "auto", "source addresses to bind: auto, none, or a range like 127.0.0.2-127.0.0.50")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed for Poisson arrivals (0: from the clock)")
	fs.IntVar(&o.Nice, "nice", 0, "niceness of the worker processes (0..19): where they share CPUs with the gateway, it runs first; their answers are dated by the kernel's receive stamps either way")
	fs.IntVar(&o.WorkerProcs, "worker-procs", 0, "GOMAXPROCS of each worker process (0: every CPU); 1 makes the harness cheaper, its reads later")
	fs.StringVar(&out.json, "json", "loadtest.json", "write the JSON result here (\"\" to skip)")
	fs.StringVar(&out.html, "html", "loadtest.html", "write the HTML report here (\"\" to skip)")
	return
}

func finishFlags(o *loadtest.Options, scenarios, src, secretEnv string) error {
	o.Scenarios = loadtest.ParseScenarios(scenarios)
	switch src {
	case "auto":
		o.SourcesAuto = true
	case "none", "":
	default:
		a, err := worker.ParseSourceAddrs(src)
		if err != nil {
			return fmt.Errorf("-src: %w", err)
		}
		o.Sources = a
	}
	if o.AdminToken == "" {
		o.AdminToken = os.Getenv("MGW_ADMIN_TOKEN")
	}
	if secretEnv != "" {
		o.Secret = os.Getenv(secretEnv)
		if o.Secret == "" {
			return fmt.Errorf("-secret-env %s: variable empty or unset", secretEnv)
		}
	}
	o.Command = "mgw loadtest " + strings.Join(os.Args[2:], " ")
	return nil
}

// interruptible returns a context cancelled by the first SIGINT/SIGTERM; a second one
// kills the process the default way.
func interruptible() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			signal.Stop(ch)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func loadtestRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw loadtest run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadtest.Options
	var out outputs
	scenarios, src, secretEnv := runFlags(fs, &o, &out, 1000)
	fs.StringVar(&o.Target, "target", "", "gateway listener to load, host:port (required)")
	fs.StringVar(&o.Stats, "stats", "", "gateway admin address (host:port) or /v1/stats URL; a comma list when several gateway processes share the listener (figures summed); \"\" runs without gateway figures")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mgw loadtest run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := finishFlags(&o, *scenarios, *src, *secretEnv); err != nil {
		fmt.Fprintf(stderr, "mgw loadtest run: %v\n", err)
		return 2
	}
	o.Progress = stderr
	ctx, stop := interruptible()
	defer stop()
	res, err := loadtest.Run(ctx, o)
	return conclude("run", res, err, out, stdout, stderr)
}

func loadtestCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw loadtest compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var co loadtest.CompareOptions
	var out outputs
	scenarios, src, secretEnv := runFlags(fs, &co.Run, &out, 100000)
	engines := fs.String("engines", "epoll,rwloop", "engines to compare, in order")
	fs.StringVar(&co.MGW, "mgw", "", "mgw binary to start as the gateway and backend (default: this one)")
	fs.BoolVar(&co.KeepConfigs, "keep-configs", false, "keep the generated gateway configs")
	fs.Uint64Var(&co.GatewayNofile, "gateway-nofile", 0, "lower each gateway process's open-file limit to this, to exercise several processes on one listener on a small box (0: inherit)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mgw loadtest compare: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := finishFlags(&co.Run, *scenarios, *src, *secretEnv); err != nil {
		fmt.Fprintf(stderr, "mgw loadtest compare: %v\n", err)
		return 2
	}
	co.Engines = loadtest.ParseScenarios(*engines)
	co.Run.Progress = stderr
	ctx, stop := interruptible()
	defer stop()
	res, err := loadtest.Compare(ctx, co)
	return conclude("compare", res, err, out, stdout, stderr)
}

// conclude prints the table (partial or not), writes the files, and picks the exit code.
func conclude(cmd string, res *report.Result, err error, out outputs, stdout, stderr io.Writer) int {
	if res == nil {
		fmt.Fprintf(stderr, "mgw loadtest %s: %v\n", cmd, err)
		return 1
	}
	fmt.Fprintln(stdout)
	res.WriteTable(stdout, true)
	saved := true // a report asked for and not written fails the run (make loadtest-100k)
	if out.json != "" {
		if werr := res.SaveJSON(out.json); werr != nil {
			fmt.Fprintf(stderr, "mgw loadtest %s: %v\n", cmd, werr)
			saved = false
		} else {
			fmt.Fprintf(stdout, "result: %s\n", out.json)
		}
	}
	if out.html != "" {
		if werr := res.SaveHTML(out.html); werr != nil {
			fmt.Fprintf(stderr, "mgw loadtest %s: %v\n", cmd, werr)
			saved = false
		} else {
			fmt.Fprintf(stdout, "report: %s\n", out.html)
		}
	}
	if err == nil && !saved {
		return 1
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "mgw loadtest %s: interrupted; the report above is partial\n", cmd)
			return 130
		}
		fmt.Fprintf(stderr, "mgw loadtest %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// flagExit: -h asked for help (exit 0); anything else is a usage error (exit 2).
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
