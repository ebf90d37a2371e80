//go:build linux

package netpoll

import (
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// An idle connection costs its econn and nothing else of ours, so its size is the reactor's
// part of the per-connection memory budget (design.md: at most 512 B of RSS per idle
// connection, session included, and every live byte costs about two of RSS at GOGC=100).
// 128 is a malloc size class: one field more spills into the 144-byte class, 16 B per
// connection. Grow it only knowingly, and then move something out (see the econn comment).
const econnMaxSize = 128

func TestEconnSize(t *testing.T) {
	if n := unsafe.Sizeof(econn{}); n > econnMaxSize {
		t.Errorf("econn is %d bytes, over its %d-byte size class", n, econnMaxSize)
	}
}

// The local IP is interned: connections from the same address share one entry, and the
// address comes back intact.
func TestIPTableInterns(t *testing.T) {
	var tb ipTable
	a := [16]byte{10: 0xff, 11: 0xff, 12: 10, 15: 1}
	b := [16]byte{0: 0xfd, 15: 2}
	ia, ib := tb.intern(a), tb.intern(b)
	if ia == 0 || ib == 0 || ia == ib {
		t.Fatalf("intern gave %d and %d, want two distinct non-zero indexes", ia, ib)
	}
	if again := tb.intern(a); again != ia {
		t.Errorf("interning %v again gave %d, want %d", a, again, ia)
	}
	if got := tb.get(ia); got != a {
		t.Errorf("get(%d) = %v, want %v", ia, got, a)
	}
	if got := tb.get(ib); got != b {
		t.Errorf("get(%d) = %v, want %v", ib, got, b)
	}
	if got := tb.get(999); got != ([16]byte{}) {
		t.Errorf("get of an unknown index = %v, want the unspecified address", got)
	}
}

// Connections go to the pollers round robin, even when other fds are taken between
// accepts (the upstream pool dials as clients arrive): with the poller chosen by fd
// modulo the pollers, every accepted fd here would be even and land on one poller.
func TestPollersShareConnectionsWhenFdsInterleave(t *testing.T) {
	eng := newEngine(t, Config{Kind: "epoll", Pollers: 2})
	e := eng.(*epollEngine)
	h := newTestHandler()
	var mu sync.Mutex
	var conns []Conn
	h.onOpen = func(c Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	for i := range n {
		dialTCP(t, addr)
		waitFor(t, 2*time.Second, "the accept", func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) == i+1 })
		// Fds taken between two accepts, as dials would take them: with the test's own
		// client socket, four fds per connection, so every accepted fd has one parity.
		for range 2 {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
		}
	}
	per := map[*poller]int{}
	mu.Lock()
	for _, c := range conns {
		per[c.(*econn).poller()]++
	}
	mu.Unlock()
	if len(per) != 2 {
		t.Fatalf("%d connections on %d poller(s), want both pollers used: %v", n, len(per), per)
	}
	for p, k := range per {
		if k < n/4 {
			t.Errorf("poller %p holds %d of %d connections", p, k, n)
		}
	}
}
