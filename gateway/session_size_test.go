package gateway

import (
	"strings"
	"testing"
	"unsafe"
)

// An idle HELLO'd MMTP connection costs, in the gateway, its session, its push side and an
// entry in the push hub; with the reactor's econn that is the per-connection memory
// budget (design.md: at most 512 B of RSS per idle connection, and each live byte costs
// about two of RSS at GOGC=100). The limits are malloc size classes: one field more
// spills into the next class. Grow them only knowingly, and move something out.
const (
	mmtpSessionMaxSize = 112
	pushStateMaxSize   = 64
)

func TestSessionSizes(t *testing.T) {
	if n := unsafe.Sizeof(mmtpSession{}); n > mmtpSessionMaxSize {
		t.Errorf("mmtpSession is %d bytes, over its %d-byte size class", n, mmtpSessionMaxSize)
	}
	if n := unsafe.Sizeof(pushState{}); n > pushStateMaxSize {
		t.Errorf("pushState is %d bytes, over its %d-byte size class", n, pushStateMaxSize)
	}
}

// identity holds app-id and device-id in one string and gives both back intact, whatever
// bytes they hold: a length prefix, not a separator, so no two pairs share an identity.
func TestIdentityRoundTrip(t *testing.T) {
	long := strings.Repeat("a", maxIdentityApp)
	cases := []struct{ app, device string }{
		{"", ""}, {"wallet", ""}, {"", "dev-1"}, {"wallet", "dev-1"},
		{"a\x00b", "c"}, {"a", "\x00bc"}, {long, "d"}, {"x", strings.Repeat("d", 70000)},
	}
	seen := map[identity]int{}
	for i, c := range cases {
		id := makeIdentity(c.app, c.device)
		if a, d := id.split(); a != c.app || d != c.device {
			t.Errorf("makeIdentity(%.20q, %.20q).split() = %.20q, %.20q", c.app, c.device, a, d)
		}
		if k := id.pushKey(); k.App != c.app || k.Device != c.device {
			t.Errorf("pushKey of (%.20q, %.20q) = %+.20v", c.app, c.device, k)
		}
		if j, dup := seen[id]; dup {
			t.Errorf("cases %d and %d make the same identity", j, i)
		}
		seen[id] = i
	}
	if id := makeIdentity(long+"a", "d"); id != "" {
		t.Errorf("an app-id over %d bytes made identity of %d bytes, want none", maxIdentityApp, len(id))
	}
}
