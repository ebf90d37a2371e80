//go:build linux

package netpoll

import (
	"testing"
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
