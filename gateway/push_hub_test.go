package gateway

import "testing"

// TestHubShardChainsOneHash: devices whose identities share a hash are kept apart, a
// rebind replaces only its own device, and unbinding a replaced push side changes nothing.
func TestHubShardChainsOneHash(t *testing.T) {
	sh := &hubShard{m: map[uint64]*pushState{}}
	const h = 7
	a, b, c := &pushState{id: makeIdentity("app", "a")}, &pushState{id: makeIdentity("app", "b")}, &pushState{id: makeIdentity("app", "c")}
	for _, p := range []*pushState{a, b, c} {
		if old := sh.setLocked(h, p); old != nil {
			t.Fatalf("first bind of %q replaced %q", p.id, old.id)
		}
	}
	for _, p := range []*pushState{a, b, c} {
		if got := sh.getLocked(h, p.id); got != p {
			t.Fatalf("get %q: %p, want %p", p.id, got, p)
		}
	}
	b2 := &pushState{id: b.id}
	if old := sh.setLocked(h, b2); old != b {
		t.Fatalf("rebind of b replaced %v, want b", old)
	}
	if sh.getLocked(h, b.id) != b2 || sh.getLocked(h, a.id) != a || sh.getLocked(h, c.id) != c {
		t.Fatal("after the rebind the chain lost a device")
	}
	if sh.deleteLocked(h, b) {
		t.Fatal("unbinding the replaced push side reported it bound")
	}
	if sh.getLocked(h, b.id) != b2 {
		t.Fatal("unbinding the replaced push side unbound its successor")
	}
	for _, p := range []*pushState{c, a, b2} { // the tail, the head, the last
		if !sh.deleteLocked(h, p) {
			t.Fatalf("unbind of %q: not found", p.id)
		}
		if sh.getLocked(h, p.id) != nil {
			t.Fatalf("%q still bound after its unbind", p.id)
		}
	}
	if len(sh.m) != 0 {
		t.Fatalf("empty shard keeps %d map entries", len(sh.m))
	}
	if sh.getLocked(h, makeIdentity("app", "zz")) != nil {
		t.Fatal("an unknown identity found a push side")
	}
}
