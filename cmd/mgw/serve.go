package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/gateway"
)

// runServe runs the gateway until SIGTERM or SIGINT (graceful drain), reloads its config
// file on SIGHUP, and on SIGUSR2 hands everything to a new process and drains what stayed.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mgw serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file (YAML); empty runs the compiled-in default")
	check := fs.Bool("check", false, "validate the config and exit")
	printDefault := fs.Bool("print-default", false, "print the compiled-in default config and exit")
	// Several processes sharing one listener (reuse_port) run one config file but each needs
	// its own admin address: a systemd template gives it from the instance name.
	admin := fs.String("admin", "", "admin listen address (host:port or unix:/path), overriding admin.listen of the config")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		// Flags stop at the first word: one given by mistake would leave --check (or -c)
		// after it unread, and a gateway would start on the default config instead.
		fmt.Fprintf(stderr, "mgw serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *printDefault {
		stdout.Write(config.DefaultYAML())
		return 0
	}
	cfg, err := loadConfig(*path, *admin)
	if err != nil {
		fmt.Fprintf(stderr, "mgw: %v\n", err)
		return 1
	}
	inherit, err := gateway.InheritFromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "mgw: hot upgrade: %v\n", err)
		return 1
	}
	g, err := gateway.New(cfg, gateway.Options{Inherit: inherit})
	if err != nil {
		fmt.Fprintf(stderr, "mgw: config %s: %v\n", configName(*path), err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "config %s is valid\n", configName(*path))
		return 0
	}
	// Before the ready line: a signal sent by whoever waited for that line (a supervisor, a
	// test) must not meet the default action, which for SIGHUP ends the process.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	if err := g.Start(); err != nil {
		fmt.Fprintf(stderr, "mgw: %v\n", err)
		return 1
	}
	printReady(stdout, g, cfg)
	upgraded := make(chan struct{}, 1)
	for run := true; run; {
		var s os.Signal
		select {
		case s = <-sig:
		case <-g.Upgraded(): // POST /v1/upgrade committed
			run = false
			continue
		case <-upgraded:
			run = false
			continue
		}
		if s == syscall.SIGUSR2 {
			// The handover takes a while (connections finish their requests first); the
			// loop goes on meanwhile. On success the new process serves and this one drains.
			go func() {
				if _, err := g.Upgrade(); err != nil {
					fmt.Fprintf(stderr, "mgw: SIGUSR2: %v (kept serving)\n", err)
					return
				}
				upgraded <- struct{}{}
			}()
			continue
		}
		if s == syscall.SIGHUP {
			if *path == "" {
				fmt.Fprintln(stderr, "mgw: SIGHUP: running on the compiled-in default, nothing to reload")
				continue
			}
			next, err := loadConfig(*path, *admin)
			if err == nil {
				err = g.Reload(next)
			}
			if err != nil {
				// Through the gateway's logger: a log pipeline reading JSON gets it too.
				g.Logger().Error("reload failed; kept the running config", "file", *path, "err", err)
			}
			continue
		}
		run = false
	}
	timeout := g.Config().Runtime.DrainTime.D() // as last reloaded
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// A drain that reached its deadline is still the stop that was asked for: exit 0, as
	// operations.md says (the "drain finished" line counts what was left unanswered).
	// Exiting 1 made a supervisor count every slow drain as a failure.
	_ = g.Drain(ctx)
	return 0
}

// loadConfig reads path (or the compiled-in default) and applies -admin, so a reload keeps
// the address the process was started with.
func loadConfig(path, admin string) (*config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	}
	if admin != "" {
		cfg.Admin.Listen = admin // validated with the rest, as admin.listen
	}
	return cfg, nil
}

func configName(path string) string {
	if path == "" {
		return "(compiled-in default)"
	}
	return path
}

// printReady tells a person what they can do now, with the real bound addresses.
func printReady(w io.Writer, g *gateway.Gateway, cfg *config.Config) {
	fmt.Fprintf(w, "mgw %s ready (engine %s)\n", version, cfg.Engine)
	for _, l := range cfg.Listeners {
		a := g.Addr(l.Name)
		if a == nil {
			continue
		}
		switch l.Protocol {
		case "http1":
			fmt.Fprintf(w, "  %-8s http1 %s   try: curl -d hi http://%s/api/demo.echo\n", l.Name, a, a)
		case "mmtp":
			fmt.Fprintf(w, "  %-8s mmtp  %s   try: mgw call -addr %s demo.echo hi\n", l.Name, a, a)
		}
	}
	if a := g.AdminAddr(); a != nil {
		if ua, ok := a.(*net.UnixAddr); ok {
			fmt.Fprintf(w, "  admin          unix:%s   metrics: curl --unix-socket %s http://localhost/metrics\n", ua.Name, ua.Name)
		} else {
			fmt.Fprintf(w, "  admin          %s   metrics: curl http://%s/metrics\n", a, a)
		}
		if len(cfg.Admin.Tokens) > 0 {
			fmt.Fprintln(w, "                 changes need a token: mgw route ... reads MGW_ADMIN_TOKEN")
		}
	}
	if a := g.HealthAddr(); a != nil {
		fmt.Fprintf(w, "  health         %s   probes: /healthz /readyz /metrics\n", a)
	}
	if e := cfg.Fleet.Etcd; e != nil {
		fmt.Fprintf(w, "  fleet          routes from etcd %s under %s (docs/fleet.md)\n", strings.Join(e.Endpoints, ","), e.Prefix)
	}
	if r := cfg.Fleet.Redis; r != nil {
		fmt.Fprintf(w, "  fleet          push logs, presence, global limits and nonces in redis %s\n", r.Addr)
	}
	fmt.Fprintln(w, "  Ctrl-C drains and stops; SIGHUP reloads the config file; SIGUSR2 upgrades in place")
}
