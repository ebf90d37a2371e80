// Command mgw is the gateway's one binary: `mgw serve` (the default), `mgw call` (a curl
// for MMTP), `mgw backend` (the demo backend as its own process), `mgw route` (live
// routing through the admin API), `mgw loadtest` and `mgw version`.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

const usage = `mgw — a mobile API gateway for very many long-lived connections

Usage:
  mgw [serve] [-c config.yaml] [--check]   run the gateway (default config: listeners on 127.0.0.1)
  mgw call [flags] OPERATION [BODY|-]       call an API over MMTP (a curl for MMTP)
  mgw watch -device D [flags]               print pushes to a device as they arrive (acks, resumes)
  mgw backend [--listen ADDR] [--name N]    run the demo backend on its own
  mgw route explain|get|set ...             read and change routing through the admin API
  mgw push -device D -topic T [-body B]     publish a push to devices through the admin API
  mgw loadtest run|compare|closed ...       the 100k-connection load-test harness
  mgw version

Run "mgw COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		cmd = "help" // the commands, not serve's flags
	case len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(args, stdout, stderr)
	case "call":
		return runCall(args, os.Stdin, stdout, stderr)
	case "watch":
		return runWatch(args, stdout, stderr)
	case "backend":
		return runBackend(args, stdout, stderr)
	case "route":
		return runRoute(args, stdout, stderr)
	case "push":
		return runPush(args, os.Stdin, stdout, stderr)
	case "loadtest":
		return runLoadtest(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "mgw", version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mgw: unknown command %q\n\n%s", cmd, usage)
	return 2
}
