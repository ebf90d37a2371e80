package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/loadtest/report"
)

// mgw --help lists the commands (not serve's flags), and every command's -h is help, not
// a usage error: exit 0.
func TestHelpExitsZero(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"--help"}, &out, &errOut); rc != 0 || !strings.Contains(out.String(), "mgw call") {
		t.Fatalf("mgw --help: rc %d, stdout %q, stderr %q; want 0 and the commands", rc, out.String(), errOut.String())
	}
	for _, args := range [][]string{{"serve", "-h"}, {"backend", "-h"}, {"call", "-h"}, {"watch", "-h"},
		{"route", "get", "-h"}, {"push", "-h"}} {
		out.Reset()
		errOut.Reset()
		if rc := run(args, &out, &errOut); rc != 0 {
			t.Errorf("mgw %s: rc %d, want 0 (stderr %q)", strings.Join(args, " "), rc, errOut.String())
		}
	}
}

// A word before --check is a usage error, not a reason to start a gateway on the
// default config with --check unread.
func TestServeRefusesStrayArguments(t *testing.T) {
	for _, args := range [][]string{{"serve", "extra", "--check"}, {"backend", "extra"}} {
		var out, errOut bytes.Buffer
		if rc := run(args, &out, &errOut); rc != 2 || !strings.Contains(errOut.String(), `unexpected argument "extra"`) {
			t.Errorf("mgw %s: rc %d, stderr %q; want 2 naming the argument", strings.Join(args, " "), rc, errOut.String())
		}
	}
}

func TestRouteUnknownSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"route", "bogus", "--admin", "127.0.0.1:1"}, &out, &errOut); rc != 2 ||
		!strings.Contains(errOut.String(), `unknown subcommand "bogus"`) {
		t.Fatalf("mgw route bogus: rc %d, stderr %q; want 2 naming the subcommand", rc, errOut.String())
	}
}

// TestLoadtestFailsWhenReportNotWritten: a run whose -json or -html file cannot be written
// exits 1, not 0 (make loadtest-100k would pass without its files).
func TestLoadtestFailsWhenReportNotWritten(t *testing.T) {
	var stdout, stderr strings.Builder
	res := &report.Result{}
	if code := conclude("run", res, nil, outputs{json: t.TempDir() + "/no/such/dir/x.json"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d with an unwritable -json, want 1; stderr %q", code, stderr.String())
	}
	if code := conclude("run", res, nil, outputs{html: t.TempDir() + "/x.html"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d with a writable -html, want 0; stderr %q", code, stderr.String())
	}
}

// mgw loadtest closed -conns 0 is refused (it ran 8 connections, the default, silently).
func TestLoadtestClosedZeroConns(t *testing.T) {
	var out, errOut bytes.Buffer
	if rc := run([]string{"loadtest", "closed", "-target", "127.0.0.1:1", "-conns", "0"}, &out, &errOut); rc != 2 || !strings.Contains(errOut.String(), "-conns 0") {
		t.Fatalf("rc %d, stderr %q; want 2 and -conns named", rc, errOut.String())
	}
}
