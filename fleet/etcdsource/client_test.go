package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/fleettest"
)

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:2379":         "http://127.0.0.1:2379",
		"http://127.0.0.1:2379":  "http://127.0.0.1:2379",
		"https://etcd.lan:2379/": "https://etcd.lan:2379",
		"[::1]:2379":             "http://[::1]:2379",
		"127.0.0.1":              "error",
		"unix:///run/etcd.sock":  "error",
		"http://":                "error",
	} {
		got, err := endpointURL(in)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("endpointURL(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
	if _, err := newClient([]string{"127.0.0.1:2379", "nope"}, time.Second); err == nil || !strings.Contains(err.Error(), `endpoints[1] "nope"`) {
		t.Fatalf("a bad endpoint: %v, want it named by index", err)
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"/p/": "/p0", "a\xff": "b", "\xff\xff": "\x00"} {
		if got := string(prefixEnd(in)); got != want {
			t.Errorf("prefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClientMovesToAReachableEndpoint: with the first endpoint down, calls reach the
// second, and later calls start there.
func TestClientMovesToAReachableEndpoint(t *testing.T) {
	e := fleettest.StartEtcd(t)
	dead := fmt.Sprintf("127.0.0.1:%d", fleettest.FreePort(t))
	c, err := newClient([]string{dead, e.Endpoint}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	e.Put(t, "/q/a", "1")
	rev, kvs, err := c.rangePrefix(context.Background(), "/q/")
	if err != nil || len(kvs) != 1 || string(kvs[0].Key) != "/q/a" || string(kvs[0].Value) != "1" || rev == 0 {
		t.Fatalf("range over a dead endpoint and a live one: rev %d, %+v, %v", rev, kvs, err)
	}
	if c.cur != 1 {
		t.Fatalf("the client stays on endpoint %d, want the live one (1)", c.cur)
	}
}

// TestWatchSeesPutsDeletesAndCompaction: events arrive in order with their revisions, a
// delete is typed, and a watch from a compacted revision fails with errCompacted.
func TestWatchSeesPutsDeletesAndCompaction(t *testing.T) {
	e := fleettest.StartEtcd(t)
	c, err := newClient([]string{e.Endpoint}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	from := e.Revision(t) + 1
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.watch(ctx, "/w/", from, func(rev int64, evs []event) {
			for _, ev := range evs {
				got <- fmt.Sprintf("%s %s=%s @%d", ev.Type, ev.KV.Key, ev.KV.Value, ev.KV.ModRevision)
			}
		})
	}()
	e.Put(t, "/w/a", "x")
	e.Put(t, "/other", "y")
	e.Delete(t, "/w/a")
	want := []string{fmt.Sprintf(" /w/a=x @%d", from), fmt.Sprintf("DELETE /w/a= @%d", from+2)}
	for _, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("event %q, want %q", g, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event; want %q", w)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled watch returned %v", err)
	}
	e.Compact(t, from+2)
	err = c.watch(context.Background(), "/w/", from, func(int64, []event) {})
	if !errors.Is(err, errCompacted) {
		t.Fatalf("a watch from a compacted revision: %v", err)
	}
	// close ends a watch in progress.
	go func() { time.Sleep(100 * time.Millisecond); c.close() }()
	if err := c.watch(context.Background(), "/w/", from+3, func(int64, []event) {}); err == nil {
		t.Fatal("a watch outlived close")
	}
}

// TestClientLeavesAHungEndpoint: an endpoint that accepts and never answers takes only
// its share of the call's deadline, and the next call starts at the one that answered.
func TestClientLeavesAHungEndpoint(t *testing.T) {
	e := fleettest.StartEtcd(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	c, err := newClient([]string{ln.Addr().String(), e.Endpoint}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	e.Put(t, "/h/a", "1")
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, kvs, err := c.rangePrefix(ctx, "/h/")
		cancel()
		if err != nil || len(kvs) != 1 {
			t.Fatalf("call %d with a hung first endpoint: %v %+v", i, err, kvs)
		}
		if c.cur != 1 {
			t.Fatalf("call %d: current endpoint %d, want the live one (1)", i, c.cur)
		}
	}
}

// TestWatchNamesAGatewayThatIsNotThere: a watch answered 404 (no gRPC gateway) fails
// with the status and the endpoint, not a JSON error.
func TestWatchNamesAGatewayThatIsNotThere(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c, err := newClient([]string{srv.URL}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	err = c.watch(context.Background(), "/p/", 1, func(int64, []event) {})
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
		t.Fatalf("watch against a 404: %v", err)
	}
	if _, _, err := c.rangePrefix(context.Background(), "/p/"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("range against a 404: %v", err)
	}
}

// TestWatchEndsWhenItsMemberFreezes: a member that keeps its connections but answers
// nothing (SIGSTOP; a hung process or a proxy in front look the same) ends the watch
// through the probe, with a reason.
func TestWatchEndsWhenItsMemberFreezes(t *testing.T) {
	e := fleettest.StartEtcd(t)
	// A probe waits up to 2 s: a slow CI box does not pass for a frozen member.
	c, err := newClient([]string{e.Endpoint}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.probeEvery = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- c.watch(context.Background(), "/f/", 1, func(int64, []event) {}) }()
	time.Sleep(500 * time.Millisecond) // the watch is up, and probes pass
	select {
	case err := <-done:
		t.Fatalf("the watch of a live member ended: %v", err)
	default:
	}
	e.Freeze()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stopped answering") {
			t.Fatalf("watch of a frozen member ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch of a frozen member did not end")
	}
	e.Thaw()
}

// TestCallsGoOnAfterEtcdRestarts: calls on connections pooled before etcd restarted
// succeed at once, the transaction included (its compare makes a resend safe).
func TestCallsGoOnAfterEtcdRestarts(t *testing.T) {
	e := fleettest.StartEtcd(t)
	c, err := newClient([]string{e.Endpoint}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx := context.Background()
	for i := range 3 {
		if _, _, err := c.rangePrefix(ctx, "/r/"); err != nil {
			t.Fatalf("range before restart %d: %v", i, err)
		}
		e.Restart(e.Ready)
		ok, err := c.putIfUnchanged(ctx, []string{fmt.Sprintf("/r/k%d", i)}, [][]byte{[]byte("v")}, []int64{0})
		if err != nil || !ok {
			t.Fatalf("the first write after restart %d: %v (succeeded %v)", i, err, ok)
		}
	}
}

// TestWatchBoundsAMessage: a watch answer that never ends a message fails once it passes
// the limit instead of growing without end.
func TestWatchBoundsAMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"result":{"header":{"revision":"1"},"created":true}}`+"\n")
		io.WriteString(w, `{"result":{"events":[{"kv":{"key":"`)
		chunk := strings.Repeat("A", 1<<20)
		for i := 0; i < maxReply>>20+2; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := newClient([]string{srv.URL}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	err = c.watch(context.Background(), "/p/", 1, func(int64, []event) {})
	if err == nil || !strings.Contains(err.Error(), "a message over") {
		t.Fatalf("an endless message: %v", err)
	}
}
