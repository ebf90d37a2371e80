package main

import (
	"bytes"
	"strings"
	"testing"
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
