package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/loadtest/report"
)

// TestLoadtestCompareSharesListener runs `mgw loadtest compare` as a user would, with each
// gateway's open-file limit lowered below the connections asked for: compare must start
// several real `mgw serve` processes on one listener (reuse_port), hold every connection
// (measured, not projected), and sum the gateway figures over the processes.
func TestLoadtestCompareSharesListener(t *testing.T) {
	res, b := runLoadtest(t, "compare", "-conns", "3000", "-gateway-nofile", "1800",
		"-hello", "-rate", "200", "-duration", "2s", "-warmup", "500ms")
	if len(res.Rows) != 2 || res.Partial || res.Limits.GatewayProcs != 3 || res.Limits.GatewayNofile != 1800 {
		t.Fatalf("rows %d partial %v limits %+v\n%s", len(res.Rows), res.Partial, res.Limits, b)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "epoll: 3 gateway processes shared the MMTP listener (reuse_port) to hold 3000 connections") {
		t.Fatalf("no note says how many processes held the connections and why: %q", res.Notes)
	}
	for _, row := range res.Rows {
		g := row.Gateway
		if row.Conns != 3000 || len(row.Errors) != 0 || row.OK == 0 || g.Procs != 3 || len(g.Processes) != 3 || g.Conns != 3000 {
			t.Fatalf("%s: conns %d errors %v ok %d gateway %+v\n%s", row.Engine, row.Conns, row.Errors, row.OK, g, b)
		}
		if p := row.Projection; p != nil && p.Target == 3000 && p.Extrapolated {
			t.Fatalf("%s: the 3000 held were projected: %+v", row.Engine, p)
		}
		var conns int64
		var rss, idle uint64
		pids := map[int]bool{}
		for _, p := range g.Processes {
			if p.Conns == 0 || p.Nofile != 1800 || p.RSSBytes == 0 || p.IdleRSSBytes == 0 || pids[p.PID] {
				t.Fatalf("%s: process %+v (each must hold some connections under its lowered limit)", row.Engine, p)
			}
			pids[p.PID] = true
			conns += p.Conns
			rss += p.RSSBytes
			idle += p.IdleRSSBytes
		}
		// The three processes share the binary's pages: their PSS summed is under their
		// RSS summed.
		if g.PSSBytes == 0 || g.PSSBytes >= g.RSSBytes {
			t.Fatalf("%s: PSS summed %d, RSS summed %d", row.Engine, g.PSSBytes, g.RSSBytes)
		}
		// The connections stay put while measured, so the processes' own peaks add up to
		// the summed ones.
		if conns != 3000 || idle != g.IdleRSSBytes || rss < g.RSSBytes || g.RSSBytes <= g.IdleRSSBytes || g.PerConnBytes <= 0 {
			t.Fatalf("%s: per-process sums conns %d rss %d idle %d against %+v", row.Engine, conns, rss, idle, g)
		}
	}
}

// runLoadtest runs `mgw loadtest args...` as a user would and returns its JSON result
// and its output; it fails the test when the command fails.
func runLoadtest(t *testing.T, args ...string) (report.Result, []byte) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mgwBin, append(append([]string{"loadtest"}, args...), "-json", out, "-html", "")...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	f, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res report.Result
	if err := json.Unmarshal(f, &res); err != nil {
		t.Fatal(err)
	}
	return res, b
}

var adminLineRE = regexp.MustCompile(`^\s+admin\s+(127\.0\.0\.1:\d+)`)

// TestServeAdminFlag runs two `mgw serve` on one config whose MMTP listener has
// reuse_port: -admin gives each its own admin address (the config's would collide), both
// serve the one listener, and a reload keeps the address given on the command line.
func TestServeAdminFlag(t *testing.T) {
	_, be := backend(t, "b")
	port := freePort(t)
	cfg := filepath.Join(t.TempDir(), "mgw.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`admin:
  listen: 127.0.0.1:%d
listeners:
  - name: mobile
    listen: 127.0.0.1:%d
    protocol: mmtp
    reuse_port: true
clusters:
  - name: demo
    hosts: ["%s"]
routes:
  - api: demo.*
    split: {demo: 100}
`, freePort(t), port, be)), 0o600); err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	var procs []*proc
	for i := 0; i < 2; i++ {
		p := start(t, fmt.Sprintf("serve %d", i), "serve", "-c", cfg, "-admin", "127.0.0.1:0")
		admin := p.waitLine(adminLineRE, 60*time.Second)[1]
		var st struct {
			PID int `json:"pid"`
		}
		out, err := curl(t, "http://"+admin+"/v1/stats")
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.PID == 0 || pids[st.PID] {
			t.Fatalf("stats at %s: %v %q", admin, err, out)
		}
		pids[st.PID] = true
		procs = append(procs, p)
	}
	c, err := client.Dial(context.Background(), fmt.Sprintf("127.0.0.1:%d", port), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	procs[1].cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(procs[1].output(), "configuration reloaded"); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", procs[1].output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(procs[1].output(), "need a restart") {
		t.Fatalf("reload saw an admin change:\n%s", procs[1].output())
	}
}
