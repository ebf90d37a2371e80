package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

// TestRunClosedEndToEnd: a closed loop of 2 x 8 streams against the reference MMTP server
// answers every call, counts only the window, and charges CPU to the process named (this
// one, which also runs the server, so it is busy).
func TestRunClosedEndToEnd(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	res, err := RunClosed(context.Background(), ClosedOptions{Target: srv.Addr(), Conns: 2, Streams: 8,
		Duration: 700 * time.Millisecond, Warmup: 200 * time.Millisecond, API: "demo.size", BodySize: 1024,
		PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls == 0 || len(res.Errors) != 0 {
		t.Fatalf("calls %d errors %v, want calls and no errors", res.Calls, res.Errors)
	}
	if res.Latency.Count < res.Calls {
		t.Fatalf("%d latencies for %d calls", res.Latency.Count, res.Calls)
	}
	// The warm-up is not in the window: the server saw more requests than were counted.
	if got := uint64(srv.Requests.Load()); got <= res.Sent {
		t.Fatalf("server saw %d requests, window sent %d: the warm-up's should be extra", got, res.Sent)
	}
	if res.Seconds < 0.7 || res.CPUSeconds <= 0 {
		t.Fatalf("window %.3f s, cpu %.2f s: want at least 0.7 s and some CPU", res.Seconds, res.CPUSeconds)
	}
	var out bytes.Buffer
	res.Write(&out)
	want := fmt.Sprintf("result calls=%d ", res.Calls)
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), " errors=0\n") {
		t.Fatalf("output lacks %q and errors=0:\n%s", want, out.String())
	}
}

// TestRunClosedBadInput: each mistake fails before any load, naming the flag.
func TestRunClosedBadInput(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := ClosedOptions{Target: srv.Addr(), Duration: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*ClosedOptions)
		want string
	}{
		{"no target", func(o *ClosedOptions) { o.Target = "" }, "-target"},
		{"pipelined http", func(o *ClosedOptions) { o.Protocol = "http1"; o.Streams = 4 }, "-streams 4"},
		{"bad protocol", func(o *ClosedOptions) { o.Protocol = "h2" }, "-protocol"},
		{"negative conns", func(o *ClosedOptions) { o.Conns = -1 }, "-conns -1"},
		{"no duration", func(o *ClosedOptions) { o.Duration = 0 }, "-duration"},
		{"negative pid", func(o *ClosedOptions) { o.PID = -3 }, "-pid -3"},
		{"pid gone", func(o *ClosedOptions) { o.PID = 1 << 30 }, fmt.Sprintf("-pid %d", 1<<30)},
		{"closed port", func(o *ClosedOptions) { o.Target = "127.0.0.1:1" }, "unreachable"},
	} {
		o := base
		tc.edit(&o)
		_, err := RunClosed(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}
