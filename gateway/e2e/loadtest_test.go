package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp/client"
)

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
