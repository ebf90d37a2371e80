package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// TestMaxConnectionAge: a listener's connections are retired once they are
// max_connection_age old: MMTP gets GOAWAY reason max_age and is closed, an idle HTTP
// keep-alive connection is closed, and the retirement is counted.
func TestMaxConnectionAge(t *testing.T) {
	_, be := backend(t, "b1")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_connection_age: 1s, max_connection_age_grace: 2s}
  - {name: web, listen: 127.0.0.1:0, protocol: http1, max_connection_age: 1s}
clusters:
  - {name: b, hosts: [%q], timeout: 5s}
routes:
  - {api: "*", split: {b: 100}}
  - {path: /, split: {b: 100}}
`, be))
	reasons := make(chan string, 1)
	c := g.mmtpClient(t, "mobile", client.Options{Hello: true, DeviceID: "d",
		OnGoAway: func(_ uint32, reason string) { reasons <- reason }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, "demo.echo", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	h, err := net.Dial("tcp", g.addrs["web"])
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fmt.Fprintf(h, "GET /api/demo.echo HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(h)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	select {
	case r := <-reasons:
		if r != "max_age" {
			t.Fatalf("GOAWAY reason %q, want max_age", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no GOAWAY for a connection past max_connection_age")
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the retired MMTP connection was not closed")
	}
	h.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the retired idle HTTP connection: read %v, want EOF", err)
	}
	out, err := curl(t, "http://"+g.addrs["admin"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"mobile", "web"} {
		if !strings.Contains(out, fmt.Sprintf(`mgw_listener_retired_total{listener=%q} 1`, l)) {
			t.Errorf("metrics lack mgw_listener_retired_total{listener=%q} 1", l)
		}
	}
}

// TestDrainSpread: with runtime.drain_spread, SIGTERM's GOAWAYs reach the clients spread
// over the window instead of in one instant, and every connection still gets one.
func TestDrainSpread(t *testing.T) {
	_, be := backend(t, "b1")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
runtime: {drain_spread: 2s, drain_timeout: 20s}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
clusters:
  - {name: b, hosts: [%q], timeout: 5s}
routes:
  - {api: "*", split: {b: 100}}
`, be))
	const n = 20
	var mu sync.Mutex
	var at []time.Time
	var cs []*client.Client
	for i := 0; i < n; i++ {
		cs = append(cs, g.mmtpClient(t, "mobile", client.Options{OnGoAway: func(uint32, string) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
		}}))
	}
	// A connection still in the listen queue when the drain begins is never accepted, so
	// it gets no GOAWAY: a round trip on each makes sure the gateway holds all n.
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := c.Ping(ctx); err != nil {
			t.Fatalf("ping before the drain: %v", err)
		}
		cancel()
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	if code := g.wait(60 * time.Second); code != 0 {
		t.Fatalf("mgw serve exited %d", code)
	}
	// Each client's reader has seen everything the gateway sent once it ends.
	for _, c := range cs {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a client connection still open after the gateway exited")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != n {
		t.Fatalf("%d of %d connections got GOAWAY", len(at), n)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	// Spread evenly over 2 s the first and last are ~1.9 s apart; all at once, within a
	// few ms. A loaded machine only delays the later ones further.
	if d := at[n-1].Sub(at[0]); d < 500*time.Millisecond {
		t.Fatalf("GOAWAYs came within %v of each other, want them spread over drain_spread", d)
	}
}

// TestMaxHelloRate: HELLOs over a listener's max_hello_rate wait for their turn instead of
// being refused: every client gets in, no faster than the rate.
func TestMaxHelloRate(t *testing.T) {
	_, be := backend(t, "b1")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_hello_rate: 10}
clusters:
  - {name: b, hosts: [%q], timeout: 5s}
routes:
  - {api: "*", split: {b: 100}}
`, be))
	const n = 8
	start := time.Now()
	done := make(chan time.Duration, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, g.addrs["mobile"], client.Options{Hello: true, DeviceID: fmt.Sprintf("d%d", i)})
			if err != nil {
				errs <- err
				return
			}
			done <- time.Since(start)
			c.Close()
		}()
	}
	var at []time.Duration
	for len(at) < n {
		select {
		case err := <-errs:
			t.Fatalf("HELLO over the rate: %v", err)
		case d := <-done:
			at = append(at, d)
		}
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	// One turn per 100 ms after a burst of one: the k-th HELLO is answered no sooner
	// than (k-1) turns after the start. A slow machine only answers later.
	for k, d := range at {
		if floor := time.Duration(k-1) * 100 * time.Millisecond; d < floor {
			t.Fatalf("HELLO %d answered after %v, sooner than the rate allows (%v)", k+1, d, floor)
		}
	}
	out, err := curl(t, "http://"+g.addrs["admin"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, `mgw_listener_hello_delayed_total{listener="mobile"} 0`) {
		t.Fatal("no HELLO counted as delayed")
	}
}

// TestDrainDeadlineExitsZero: a drain that reaches runtime.drain_timeout with a request
// still in flight is still the stop that was asked for: mgw serve exits 0
// (operations.md: "close, exit 0"), and the log counts what was left unanswered. It
// exited 1, which a supervisor counts as a failure.
func TestDrainDeadlineExitsZero(t *testing.T) {
	_, be := backend(t, "b1")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
runtime: {drain_timeout: 1s}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
clusters:
  - {name: b, hosts: [%q], timeout: 30s}
routes:
  - {api: "*", split: {b: 100}}
`, be))
	c := g.mmtpClient(t, "mobile", client.Options{})
	type result struct {
		resp *codec.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, "demo.sleep", nil, []byte("10000")) // outlasts the drain
		got <- result{resp, err}
	}()
	waitFor(t, 10*time.Second, func() bool { return g.stats(t).InFlight == 1 })
	g.cmd.Process.Signal(syscall.SIGTERM)
	if code := g.wait(20 * time.Second); code != 0 {
		t.Fatalf("mgw serve exited %d after a drain that reached its deadline, want 0:\n%s", code, g.output())
	}
	if out := g.output(); !strings.Contains(out, "deadline_hit=true") || !strings.Contains(out, "left_unanswered=1") {
		t.Errorf("the drain's log does not count the request left unanswered:\n%s", out)
	}
	// The request cut at the deadline is answered before the close (mmtp.md, GOAWAY:
	// every accepted request is answered): 503 unavailable, not a 502 or a bare EOF.
	select {
	case r := <-got:
		if r.err != nil || r.resp.Status != 503 || r.resp.Header.Value("error") != "unavailable" {
			t.Errorf("the request cut at the drain's deadline: %+v %v, want 503 unavailable", r.resp, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the request cut at the drain's deadline got nothing")
	}
}
