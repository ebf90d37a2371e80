package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

// fakeMGWEnv makes the test binary play `mgw backend` and `mgw serve -c FILE`, so compare's
// process handling is tested without depending on the gateway's build: serve reads the
// generated config's engine and addresses, answers MMTP on the listener and /v1/stats on
// the admin address with that engine's name.
const fakeMGWEnv = "MGW_LOADTEST_FAKE_MGW"

func init() {
	if os.Getenv(fakeMGWEnv) != "1" || os.Getenv(workerEnv) == "1" {
		return
	}
	args := os.Args[1:]
	switch {
	case len(args) >= 1 && args[0] == "backend":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Printf("listening %s\n", ln.Addr())
		http.Serve(ln, http.NotFoundHandler())
	case len(args) >= 3 && args[0] == "serve" && args[1] == "-c":
		os.Exit(fakeServe(args[2]))
	}
	os.Exit(3)
}

func fakeServe(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 1
	}
	find := func(re string) string {
		m := regexp.MustCompile(re).FindSubmatch(b)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	engine := find(`(?m)^engine: (\S+)`)
	admin := find(`(?m)^admin:\n  listen: (\S+)`)
	if len(os.Args) >= 6 && os.Args[4] == "-admin" {
		admin = os.Args[5]
	}
	mobile := find(`(?m)- name: mobile\n    listen: (\S+)`)
	backend := find(`hosts: \["([^"]+)"\]`)
	if engine == "" || admin == "" || mobile == "" || backend == "" {
		fmt.Fprintf(os.Stderr, "fake serve: config lacks fields:\n%s", b)
		return 1
	}
	srv, err := testserver.NewMMTPOn(mobile, nil)
	if err != nil {
		return 1
	}
	ln, err := net.Listen("tcp", admin)
	if err != nil {
		return 1
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"engine": engine, "pid": os.Getpid(), "connections_total": srv.Conns.Load(),
			"goroutines": 5, "rss_bytes": 20e6 + 5000*srv.Conns.Load(), "cpu_seconds": 0.5, "open_files_limit": 20000})
	}))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	srv.Close()
	return 0
}

func TestCompareStartsEachEngine(t *testing.T) {
	t.Setenv(fakeMGWEnv, "1")
	var progress syncWriter
	res, err := Compare(context.Background(), CompareOptions{MGW: os.Args[0], ConfigDir: t.TempDir(),
		Run: Options{Conns: 30, Ramp: 0, Rate: 100, Duration: 700 * time.Millisecond, Launcher: testLauncher(),
			Progress: &progress}})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Rows) != 2 || res.Rows[0].Engine != "epoll" || res.Rows[1].Engine != "rwloop" {
		t.Fatalf("rows %+v", res.Rows)
	}
	for _, row := range res.Rows {
		if row.Conns != 30 || row.OK != 70 || !row.Gateway.Available || row.Gateway.Goroutines != 5 {
			t.Fatalf("%s: conns %d ok %d gw %+v", row.Engine, row.Conns, row.OK, row.Gateway)
		}
	}
	if res.Limits.GatewayNofile != 20000 {
		t.Fatalf("gateway nofile %d, want the fake's /proc limit 20000", res.Limits.GatewayNofile)
	}
	var table bytes.Buffer
	res.WriteTable(&table, true)
	for _, want := range []string{"epoll steady", "rwloop steady", "reference: goroutine per connection"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestCompareBadEngine(t *testing.T) {
	if _, err := Compare(context.Background(), CompareOptions{Engines: []string{"iouring"}, Run: Options{Conns: 1, Rate: 1, Duration: time.Second}}); err == nil || !strings.Contains(err.Error(), "iouring") {
		t.Fatalf("%v", err)
	}
}
