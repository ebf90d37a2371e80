package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mgw-project/mgw/loadtest/observe"
	"github.com/mgw-project/mgw/loadtest/report"
)

// CompareOptions run the same load against the gateway started once per engine.
type CompareOptions struct {
	Run Options // Target and Stats are set per engine; the rest applies to every engine
	// Engines to compare, in order; default epoll then rwloop.
	Engines []string
	// MGW is the mgw binary to start as `serve -c` and `backend`; default this executable.
	MGW string
	// ConfigDir holds the generated configs; default the system temp dir. They are removed
	// afterwards unless KeepConfigs.
	ConfigDir   string
	KeepConfigs bool
	// GatewayNofile lowers each gateway process's open-file limit (0: inherit this
	// process's), to exercise several processes on one listener on a small box.
	GatewayNofile uint64
}

// Compare starts a demo backend (`mgw backend`), then for each engine a gateway
// (`mgw serve -c <generated config>`) and runs the scenarios against it, one row per
// engine and scenario in a single result. Interrupted, it stops what it started and returns
// the rows so far, partial.
func Compare(ctx context.Context, co CompareOptions) (*report.Result, error) {
	if len(co.Engines) == 0 {
		co.Engines = []string{"epoll", "rwloop"}
	}
	for _, e := range co.Engines {
		if e != "epoll" && e != "rwloop" {
			return nil, fmt.Errorf("-engines: %q: want epoll or rwloop", e)
		}
	}
	if co.MGW == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the mgw binary: %w", err)
		}
		co.MGW = exe
	}
	progress := co.Run.Progress
	if progress == nil {
		progress = io.Discard
	}
	if own := observe.OwnNofile(); co.GatewayNofile > 0 && own > 0 && co.GatewayNofile > own {
		return nil, fmt.Errorf("-gateway-nofile %d: above this process's open-file limit %d (it can only lower it)", co.GatewayNofile, own)
	}
	if co.GatewayNofile > 0 && co.GatewayNofile <= GatewayFDMargin {
		return nil, fmt.Errorf("-gateway-nofile %d: leaves no room for connections (%d are kept for listeners, upstream and epoll)", co.GatewayNofile, GatewayFDMargin)
	}
	// Validate everything that does not depend on the gateway before starting anything.
	probe := co.Run
	probe.Target, probe.Stats = "127.0.0.1:1", ""
	if _, err := probe.withDefaults(); err != nil {
		return nil, err
	}

	backend, err := startChild("mgw backend", co.MGW, "backend", "-listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer backend.stop(5 * time.Second)
	baddr, err := backend.waitLine(ctx, "listening ", 10*time.Second)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "compare: demo backend on %s\n", baddr)

	all := &report.Result{Version: report.FormatVersion, Started: time.Now(), Command: co.Run.Command}
	defer func() { all.Finished = time.Now() }()
	for i, eng := range co.Engines {
		co.Run.SourceSkip = i * 40
		res, err := compareOne(ctx, co, eng, baddr, progress)
		if res != nil {
			if all.Params.Target == "" {
				all.Params, all.Limits = res.Params, res.Limits
			}
			all.Params.Target = "(gateway started by compare)"
			for _, n := range append(res.Limits.Notes, res.Notes...) {
				all.Notes = append(all.Notes, eng+": "+n)
			}
			if res.Limits.GatewayNofile > 0 {
				all.Limits.GatewayNofile = res.Limits.GatewayNofile
			}
			all.Limits.GatewayProcs = max(all.Limits.GatewayProcs, res.Limits.GatewayProcs)
			all.Rows = append(all.Rows, res.Rows...)
		}
		if err != nil {
			all.Partial = true
			if ctx.Err() != nil {
				all.Reason = "interrupted during engine " + eng
			} else {
				all.Reason = fmt.Sprintf("engine %s: %v", eng, err)
			}
			return all, err
		}
	}
	return all, nil
}

func compareOne(ctx context.Context, co CompareOptions, eng, backend string, progress io.Writer) (*report.Result, error) {
	mobile, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg, err := writeConfigFile(co.ConfigDir, eng, mobile, admin, backend)
	if err != nil {
		return nil, fmt.Errorf("writing the %s config: %w", eng, err)
	}
	if !co.KeepConfigs {
		defer os.Remove(cfg)
	}
	var gws gateways
	defer gws.stop(15 * time.Second)
	// The first process tells how many files a gateway may open here; when the connections
	// do not fit it, more processes join its listener (reuse_port) with the same config.
	if err := gws.start(ctx, co, eng, cfg, admin, progress); err != nil {
		return nil, err
	}
	_, nofile, err := gatewayNofile(ctx, httpClient, observe.StatsURL(admin), true)
	if err != nil {
		return nil, err
	}
	procs := 1
	if nofile > 0 {
		if procs, err = gatewayProcs(co.Run.Conns, nofile); err != nil {
			return nil, err
		}
	}
	for len(gws.admins) < procs {
		a, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := gws.start(ctx, co, eng, cfg, a, progress); err != nil {
			return nil, err
		}
	}
	ro := co.Run
	ro.Target, ro.Stats, ro.Label = mobile, strings.Join(gws.admins, ","), eng
	ro.Progress = progress
	res, err := Run(ctx, ro)
	if res != nil && procs > 1 {
		res.Notes = append([]string{gatewayNote(procs, nofile, res.Limits.RunConns)}, res.Notes...)
	}
	return res, err
}

// gateways are the `mgw serve` processes of one engine, all on one config.
type gateways struct {
	procs  []*child
	admins []string
}

// start starts one more gateway with its own admin address and waits for its /v1/stats.
func (g *gateways) start(ctx context.Context, co CompareOptions, eng, cfg, admin string, progress io.Writer) error {
	name := fmt.Sprintf("mgw serve (%s #%d, admin %s)", eng, len(g.procs)+1, admin)
	args := []string{"serve", "-c", cfg, "-admin", admin}
	fmt.Fprintf(progress, "compare: starting gateway, engine %s: %s %s\n", eng, co.MGW, strings.Join(args, " "))
	path := co.MGW
	if co.GatewayNofile > 0 {
		// The limit is set before exec, so the gateway never runs above it.
		fmt.Fprintf(progress, "compare: its open-file limit lowered to %d (-gateway-nofile)\n", co.GatewayNofile)
		args = append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, co.GatewayNofile), path}, args...)
		path = "/bin/sh"
	}
	gw, err := startChild(name, path, args...)
	if err != nil {
		return err
	}
	g.procs, g.admins = append(g.procs, gw), append(g.admins, admin)
	return waitStats(ctx, gw, admin)
}

// stop stops every gateway at once: each drains in parallel, within grace.
func (g *gateways) stop(grace time.Duration) {
	var wg sync.WaitGroup
	for _, c := range g.procs {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(grace) }()
	}
	wg.Wait()
}

// waitStats waits until the gateway's admin listener answers /v1/stats.
func waitStats(ctx context.Context, gw *child, admin string) error {
	url := observe.StatsURL(admin)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := observe.FetchStats(ctx, httpClient, url, time.Second)
		if err == nil {
			return nil
		}
		select {
		case <-gw.done:
			return fmt.Errorf("%s exited (%v); output:\n%s", gw.name, gw.err, gw.out)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no /v1/stats at %s within 20s (%v); output:\n%s", gw.name, admin, err, gw.out)
		}
	}
}
