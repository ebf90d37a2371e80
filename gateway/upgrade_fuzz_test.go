package gateway

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecodeUpgradeMsg: any packet either fails to decode or decodes to a message that
// survives a round trip and respects the batch bound.
func FuzzDecodeUpgradeMsg(f *testing.F) {
	f.Add([]byte(`{"t":"ready"}`))
	f.Add([]byte(`{"t":"batch","c":[{"l":"mobile","a":"203.0.113.7:5555","s":true,"b":1700000000,"h":true,"app":"a","dev":"d","last":7,"p":"AAEC"}]}`))
	f.Add([]byte(`{"t":"ack","r":[0,3]}`))
	f.Add([]byte(`{"t":"commit"}`))
	f.Add([]byte(`{"t":"nope"}`))
	f.Add([]byte(`{"t":"batch","c":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeUpgradeMsg(b)
		if err != nil {
			return
		}
		if len(m.Conns) > maxBatch {
			t.Fatalf("%d connections passed the bound", len(m.Conns))
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeUpgradeMsg(again)
		if err != nil || !reflect.DeepEqual(normMsg(m), normMsg(m2)) {
			t.Fatalf("round trip: %+v -> %s -> %+v (%v)", m, again, m2, err)
		}
	})
}

// normMsg makes nil and empty slices alike, which JSON does not tell apart.
func normMsg(m *upgradeMsg) upgradeMsg {
	n := *m
	if len(n.Conns) == 0 {
		n.Conns = nil
	}
	if len(n.Rejected) == 0 {
		n.Rejected = nil
	}
	n.Conns = append([]connState(nil), n.Conns...)
	for i := range n.Conns {
		if len(n.Conns[i].Pending) == 0 {
			n.Conns[i].Pending = nil
		}
	}
	return n
}

// FuzzParseInherit: what parses names every descriptor at 3 or above (0-2 are stdio) and
// writes back to an equivalent list.
func FuzzParseInherit(f *testing.F) {
	f.Add("3", "mobile=4,web=5,@admin=6")
	f.Add("3", "")
	f.Add("2", "a=4")
	f.Add("3", "a=1")
	f.Add("3", "=4,b")
	f.Fuzz(func(t *testing.T, sock, list string) {
		in, err := parseInherit(sock, list)
		if err != nil {
			return
		}
		if in.Sock < 3 {
			t.Fatalf("sock %d", in.Sock)
		}
		var parts []string
		for name, fd := range in.FDs {
			if fd < 3 || name == "" {
				t.Fatalf("entry %q=%d", name, fd)
			}
			if !strings.ContainsAny(name, ",=") {
				parts = append(parts, name+"="+strconv.Itoa(fd))
			}
		}
		again, err := parseInherit(strconv.Itoa(in.Sock), strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", parts, err)
		}
		for _, p := range parts {
			name, _, _ := strings.Cut(p, "=")
			if again.FDs[name] != in.FDs[name] {
				t.Fatalf("%s: %d after re-parse, want %d", name, again.FDs[name], in.FDs[name])
			}
		}
	})
}
