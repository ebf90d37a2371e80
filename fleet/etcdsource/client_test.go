package etcdsource

import (
	"context"
	"errors"
	"fmt"
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
	from := e.Compact(t, 0) + 1
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
