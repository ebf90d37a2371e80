// Package loadtest is the harness behind `mgw loadtest`: it opens many long connections to
// an MMTP or HTTP target through worker processes it starts itself, drives an open-loop
// request rate across them, reads the gateway's /v1/stats and the kernel's /proc every
// second, and reports a table in the shape of the design's reference, a JSON record and an
// offline HTML page. Limits of the box are reported, never hidden.
package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mgw-project/mgw/loadtest/openloop"
	"github.com/mgw-project/mgw/loadtest/worker"
)

// Options of one `loadtest run`. Zero values take the defaults noted.
type Options struct {
	Target   string  // host:port of the gateway listener
	Protocol string  // mmtp (default) or http1
	Conns    int     // connections to hold
	Ramp     float64 // new connections per second, all workers together; 0 = as fast as possible
	Rate     float64 // requests per second, all workers together (0 only for the idle scenario)
	Arrival  string  // constant (default) or poisson
	Duration time.Duration
	// Warmup runs the steady scenario's load this long before measuring (upstream pools
	// filled, caches warm); its requests are not in the result. 0: none.
	Warmup   time.Duration
	API      string // operation type; default demo.echo
	BodySize int    // request body bytes; default 1024
	AppID    string
	Secret   string // signs requests when set
	Hello    bool
	Timeout  time.Duration // per request; default 10 s
	// Scenarios run in order, each its own row; default steady.
	Scenarios []string
	PingEvery time.Duration // idle scenario heartbeat; default 5 s
	// Workers is the least number of worker processes; more are started when the per-process
	// open-file limit requires it.
	Workers int
	// PerWorker caps connections per worker below what the open-file limit allows (0: the limit).
	PerWorker int
	// Sources are the local addresses to bind, spread round robin; nil and SourcesAuto
	// picks 127.0.0.2.. for a loopback target when one address's ports would not suffice.
	Sources     []netip.Addr
	SourcesAuto bool
	// SourceSkip moves the automatic range along 127.0.0.x; Compare sets it per engine so
	// one engine's TIME_WAIT sockets do not slow the next one's binds.
	SourceSkip int
	// Stats is the gateway admin address or stats URL; "" runs without gateway figures.
	Stats string
	// Label names the gateway in rows (compare sets the engine); default from /v1/stats.
	Label string
	// Launcher starts workers; zero value re-executes this binary.
	Launcher worker.Launcher
	// Progress receives one line a second; nil discards.
	Progress io.Writer
	// Command is recorded in the result, for the record.
	Command string
	// Seed makes Poisson arrivals repeatable.
	Seed uint64
	// Admin is the gateway's admin listener (host:port or URL) the push scenario publishes
	// through (POST /v1/push); "" takes the -stats address. AdminToken is its bearer token.
	Admin, AdminToken string
	// PushCrash is the share of pushes (0..0.5) on which a device drops its connection
	// before processing them, to come back and have them redelivered; default 0.01, <0 none.
	PushCrash float64
	// Capacity, for the overload scenario, is what the gateway serves per second; 0
	// searches for it (the highest rate served without refusals), starting from the OK
	// answers per second while Rate is offered (so Rate should be above capacity). The
	// steps offer multiples of it.
	Capacity float64
	// Nice is the scheduling niceness (0..19) the worker processes take, so that where they
	// share CPUs with the gateway they load, the gateway runs first: otherwise the harness
	// takes more of its CPU the more it offers, and past capacity measures itself. Their
	// answers are dated by the kernel's receive stamps, so their own wait for a CPU is not
	// in the latencies. 0 leaves them as they are.
	Nice int
	// WorkerProcs is each worker process's GOMAXPROCS; 0 leaves the runtime's (every CPU).
	// With one, the harness's poller, its reactor workers and its schedule take turns on
	// one thread, where with a processor per CPU each hand-off between them wakes another
	// thread: about a quarter less of the harness's CPU past the gateway's capacity, but
	// its reads wait while it sends, and a late read dates older answers by newer bytes
	// (docs/operations.md, "Overload"). More workers (-workers) spread a harness over
	// more CPUs.
	WorkerProcs int
}

// Limits on input, so a typo fails at once instead of after a long ramp.
const (
	MaxConns    = 10_000_000
	MaxBody     = 4 << 20
	MaxDuration = 24 * time.Hour
)

// withDefaults validates o and fills defaults. Every error names the flag and value.
func (o Options) withDefaults() (Options, error) {
	if o.Protocol == "" {
		o.Protocol = "mmtp"
	}
	if o.Protocol == "http" {
		o.Protocol = "http1"
	}
	if o.Protocol != "mmtp" && o.Protocol != "http1" {
		return o, fmt.Errorf("-protocol %q: want mmtp or http1", o.Protocol)
	}
	if o.Hello && o.Protocol != "mmtp" {
		return o, fmt.Errorf("-hello: HELLO is MMTP; not available with -protocol %s", o.Protocol)
	}
	if err := checkTarget(o.Target); err != nil {
		return o, err
	}
	if o.Conns < 1 || o.Conns > MaxConns {
		return o, fmt.Errorf("-conns %d: want 1..%d", o.Conns, MaxConns)
	}
	if o.Ramp < 0 || o.Ramp > 1e6 || o.Ramp != o.Ramp { // NaN fails every comparison
		return o, fmt.Errorf("-ramp %v: want 0 (unpaced) .. 1e6 connections/s", o.Ramp)
	}
	if o.Duration <= 0 || o.Duration > MaxDuration {
		return o, fmt.Errorf("-duration %v: want more than 0 and at most %v", o.Duration, MaxDuration)
	}
	if o.Warmup < 0 || o.Warmup > MaxDuration {
		return o, fmt.Errorf("-warmup %v: want 0..%v", o.Warmup, MaxDuration)
	}
	if o.WorkerProcs < 0 || o.WorkerProcs > 1024 {
		return o, fmt.Errorf("-worker-procs %d: want 0 (every CPU) .. 1024", o.WorkerProcs)
	}
	if o.Nice < 0 || o.Nice > 19 {
		return o, fmt.Errorf("-nice %d: want 0 (as started) .. 19 (yield the most)", o.Nice)
	}
	if o.Arrival == "" {
		o.Arrival = "constant"
	}
	if _, err := openloop.ParseArrival(o.Arrival); err != nil {
		return o, fmt.Errorf("-arrival: %w", err)
	}
	if o.API == "" {
		o.API = "demo.echo"
	}
	if o.BodySize < 0 || o.BodySize > MaxBody {
		return o, fmt.Errorf("-body %d: want 0..%d bytes", o.BodySize, MaxBody)
	}
	if o.Secret != "" && o.AppID == "" {
		return o, errors.New("-secret given without -app: the signature names the app")
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Timeout < 0 {
		return o, fmt.Errorf("-timeout %v: want positive", o.Timeout)
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = []string{worker.Steady}
	}
	for _, s := range o.Scenarios {
		if !worker.KnownScenario(s) {
			return o, fmt.Errorf("-scenario %q: want steady, reconnect, slowread, idle, overload, push or upgrade", s)
		}
		if s != worker.Idle && o.Rate == 0 {
			return o, fmt.Errorf("-rate 0: scenario %q needs a request rate above 0", s)
		}
		if s == worker.Idle && o.Protocol != "mmtp" {
			return o, fmt.Errorf("-scenario idle: PING is MMTP; not available with -protocol %s", o.Protocol)
		}
		if s == worker.Upgrade && (o.Stats == "" || strings.Contains(o.Stats, ",")) {
			// Checked again when the signal is due (the process must be on this box), but
			// a missing -stats is known now, before the ramp and the warm-up.
			return o, errors.New("-scenario upgrade: -stats must name the one gateway process to signal (its admin listener)")
		}
		if s == worker.Push {
			if o.Protocol != "mmtp" {
				return o, fmt.Errorf("-scenario push: push is MMTP; not available with -protocol %s", o.Protocol)
			}
			if strings.Contains(o.Stats, ",") {
				// Each process keeps its own device logs: a publish reaches a device only
				// through the process that holds its connection.
				return o, errors.New("-scenario push: -stats lists several gateway processes, and each keeps its own push logs; run push against one")
			}
			if o.Admin == "" {
				o.Admin = o.Stats
			}
			if o.Admin == "" {
				return o, errors.New("-scenario push: -admin (or -stats) must name the admin listener to publish through")
			}
		}
	}
	switch {
	case o.PushCrash == 0:
		o.PushCrash = 0.01
	case o.PushCrash < 0:
		o.PushCrash = 0
	case o.PushCrash > 0.5 || o.PushCrash != o.PushCrash:
		return o, fmt.Errorf("-push-crash %v: want 0..0.5 (a share of the pushes), or negative for none", o.PushCrash)
	}
	if o.Rate < 0 || o.Rate > openloop.MaxRate || o.Rate != o.Rate {
		return o, fmt.Errorf("-rate %v: want 0..%v requests/s", o.Rate, openloop.MaxRate)
	}
	if o.Capacity < 0 || o.Capacity > openloop.MaxRate/3 || o.Capacity != o.Capacity {
		return o, fmt.Errorf("-capacity %v: want 0 (search for it) .. %.0f requests/s", o.Capacity, openloop.MaxRate/3)
	}
	if o.PingEvery == 0 {
		o.PingEvery = 5 * time.Second
	}
	if o.PingEvery < 10*time.Millisecond {
		return o, fmt.Errorf("-ping-every %v: want at least 10ms", o.PingEvery)
	}
	if o.Workers < 0 || o.Workers > 256 {
		return o, fmt.Errorf("-workers %d: want 0..256", o.Workers)
	}
	if o.PerWorker < 0 {
		return o, fmt.Errorf("-per-worker %d: want 0 (the open-file limit) or more", o.PerWorker)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

func checkTarget(t string) error {
	if t == "" {
		return errors.New("-target: required (host:port of the gateway listener)")
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil {
		return fmt.Errorf("-target %q: %w", t, err)
	}
	if host == "" {
		return fmt.Errorf("-target %q: host missing", t)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("-target %q: port %q is not 1..65535", t, port)
	}
	return nil
}

// ParseScenarios reads a comma list of scenario names.
func ParseScenarios(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// isLoopback reports whether target's host is a loopback address or localhost.
func isLoopback(target string) bool {
	host, _, _ := net.SplitHostPort(target)
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
