package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mgw-project/mgw/loadtest"
)

// loadtestClosed is `mgw loadtest closed`: a closed-loop throughput run (wrk's model, for
// MMTP too), with the target's CPU time over the window when -pid is given.
func loadtestClosed(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw loadtest closed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadtest.ClosedOptions
	fs.StringVar(&o.Target, "target", "", "listener to load, host:port (required)")
	fs.StringVar(&o.Protocol, "protocol", "mmtp", "mmtp or http1")
	fs.IntVar(&o.Conns, "conns", 8, "connections")
	fs.IntVar(&o.Streams, "streams", 0, "requests in flight per connection (0: 32 for mmtp, 1 for http1)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the measured window")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "the loop runs this long before the window")
	fs.StringVar(&o.API, "api", "demo.echo", "operation type to call (demo.sleep/demo.size take -body as a number)")
	fs.IntVar(&o.BodySize, "body", 1024, "request body bytes")
	fs.BoolVar(&o.Hello, "hello", false, "send an MMTP HELLO on each connection first")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "a request unanswered this long counts as a timeout")
	fs.IntVar(&o.PID, "pid", 0, "the target's process id: report calls per CPU second of it over the window")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mgw loadtest closed: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.Conns == 0 {
		// The library takes 0 for its default; a user who typed it meant none.
		fmt.Fprintf(stderr, "mgw loadtest closed: -conns 0: want at least 1 connection\n")
		return 2
	}
	ctx, stop := interruptible()
	defer stop()
	res, err := loadtest.RunClosed(ctx, o)
	if res != nil {
		res.Write(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mgw loadtest closed: %v\n", err)
		if res != nil && errors.Is(err, ctx.Err()) {
			return 130
		}
		return 1
	}
	if res.Calls == 0 {
		fmt.Fprintln(stderr, "mgw loadtest closed: no call was answered 2xx in the window")
		return 1
	}
	return 0
}
