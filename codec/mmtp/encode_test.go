package mmtp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

func entries(t *testing.T, b []byte) string {
	t.Helper()
	f, n, err := Parse(b, &Limits{MaxHeaderBytes: MaxHeaderBlock, MaxEntries: 1 << 20})
	if err != nil || n != len(b) {
		t.Fatalf("encoder output does not parse: n %d/%d err %v", n, len(b), err)
	}
	var s []string
	f.Each(func(k, v []byte) bool {
		s = append(s, string(k)+"="+string(v))
		return true
	})
	return strings.Join(s, " ")
}

func TestEncoderKeyPolicy(t *testing.T) {
	h := hdr("Content-Type", "a", "bad key", "dropped", "", "empty", "x:y", "colon",
		"content-type", "repeat", "ok_key.1", "b", strings.Repeat("k", 256), "long")
	got := entries(t, AppendFrame(nil, TypeRequest, 0, 1, h, nil))
	if got != "content-type=a ok_key.1=b" {
		t.Fatalf("entries %q", got)
	}
	if err := CheckHeader(hdr("a", "1", "A", "2")); err == nil || !strings.Contains(err.Error(), `"A"`) {
		t.Fatalf("CheckHeader repeat: %v", err)
	}
	if err := CheckHeader(hdr("Content-Type", "x", "x-y", "z")); err != nil {
		t.Fatal(err)
	}
}

func TestEncoderSizeCaps(t *testing.T) {
	big := strings.Repeat("v", MaxValueLen+1)
	got := entries(t, AppendFrame(nil, TypeRequest, 0, 1, hdr("a", big, "b", "kept"), nil))
	if got != "b=kept" {
		t.Fatalf("entries %q", got)
	}
	// A response is capped at the default client limits: 64 entries, 16 KiB block.
	var h codec.Header
	for i := 0; i < 100; i++ {
		h = append(h, codec.Field{Key: fmt.Sprintf("k%d", i), Value: "v"})
	}
	b := AppendResponse(nil, 3, &codec.Response{Status: 200, Header: h})
	f, _, err := Parse(b, nil) // default limits
	if err != nil || f.Entries != DefaultMaxEntries {
		t.Fatalf("entries %d err %v", f.Entries, err)
	}
	if st, err := ResponseStatus(&f); err != nil || st != 200 {
		t.Fatalf("status %d %v", st, err)
	}
	h = hdr("a", strings.Repeat("x", 10000), "b", strings.Repeat("y", 10000), "c", "small")
	b = AppendResponse(nil, 3, &codec.Response{Status: 200, Header: h})
	if got := entries(t, b); strings.Contains(got, "b=") || !strings.HasSuffix(got, "c=small") {
		t.Fatalf("block cap: %.40q", got)
	}
	// A frame whose flags carry undefined bits is emitted with the GZIP bit only.
	if b := AppendFrame(nil, TypeRequest, 0xff, 1, nil, nil); b[4] != FlagGzip {
		t.Fatalf("flags %#x", b[4])
	}
}

func TestAppendResponseStatusAndGzip(t *testing.T) {
	for _, tc := range []struct {
		in   int
		want string
	}{{200, "200"}, {404, "404"}, {99, "500"}, {1000, "500"}, {0, "500"}} {
		b := AppendResponse(nil, 1, &codec.Response{Status: tc.in, Header: hdr("status", "999"), Gzip: true})
		f, _, err := Parse(b, nil)
		if err != nil || !f.Gzip() {
			t.Fatalf("%d: err %v gzip %v", tc.in, err, f.Gzip())
		}
		if v, _ := f.Get("status"); string(v) != tc.want || f.Entries != 1 {
			t.Fatalf("status %d encoded %q with %d entries", tc.in, v, f.Entries)
		}
	}
}

func TestAppendIntoExistingBuffer(t *testing.T) {
	dst := []byte("prefix")
	dst = AppendPing(dst, []byte("p"))
	dst = AppendGoAway(dst, 42, ReasonIdle)
	if !bytes.HasPrefix(dst, []byte("prefix")) {
		t.Fatal("prefix clobbered")
	}
	b := dst[len("prefix"):]
	f, n, err := Parse(b, nil)
	if err != nil || f.Type != TypePing || string(f.Body) != "p" {
		t.Fatalf("ping %+v %v", f, err)
	}
	f, _, err = Parse(b[n:], nil)
	if err != nil {
		t.Fatal(err)
	}
	if last, err := LastStreamID(&f); err != nil || last != 42 {
		t.Fatalf("last %d %v", last, err)
	}
	if r, _ := f.Get("reason"); string(r) != ReasonIdle {
		t.Fatalf("reason %q", r)
	}
}

func TestParsePrefixFailsFast(t *testing.T) {
	// Each bad byte is reported as soon as it arrives, before the fixed header is complete.
	for _, tc := range []struct {
		b     string
		off   int
		field string
	}{{"G", 0, FieldMagic}, {"MX", 1, FieldMagic}, {"MM\x02", 2, FieldVersion},
		{"MM\x01\x0a", 3, FieldType}, {"MM\x01\x02\x80", 4, FieldFlags}, {"MM\x01\x02\x00\x07", 5, FieldReserved}} {
		_, n, err := Parse([]byte(tc.b), nil)
		pe, ok := err.(*ProtocolError)
		if !ok || n != 0 || pe.Offset != tc.off || pe.Field != tc.field || pe.TooLarge {
			t.Errorf("%q: n %d err %v", tc.b, n, err)
		}
	}
}

func TestLimitsConfigured(t *testing.T) {
	b := AppendRequest(nil, 1, "op", hdr("a", "1", "b", "2"), make([]byte, 100), false)
	if _, _, err := Parse(b, &Limits{MaxBodyBytes: 99}); GoAwayReason(err) != ReasonFrameTooLarge {
		t.Fatalf("body limit: %v", err)
	}
	if _, n, err := Parse(b, &Limits{MaxBodyBytes: 100, MaxEntries: 3}); err != nil || n != len(b) {
		t.Fatalf("at the limits: %v", err)
	}
	// More entries than the stack-tracked 64: the repeat check still works.
	var h codec.Header
	for i := 0; i < 100; i++ {
		h = append(h, codec.Field{Key: fmt.Sprintf("k%d", i), Value: ""})
	}
	lim := &Limits{MaxEntries: 200}
	b = AppendFrame(nil, TypeRequest, 0, 1, h, nil)
	if _, _, err := Parse(b, lim); err != nil {
		t.Fatal(err)
	}
	// Hand-build a repeat of k3 as the 101st entry (the encoder would drop it).
	b = append(b[:0:0], b...)
	b = append(b, 2, 'k', '3', 0, 0)
	b[7] += 5
	if _, _, err := Parse(b, lim); err == nil || !strings.Contains(err.Error(), `repeated key "k3"`) {
		t.Fatalf("repeat beyond 64: %v", err)
	}
	if l := (*Limits)(nil).Effective(); l != DefaultLimits() {
		t.Fatalf("nil Effective %+v", l)
	}
	if got := (&Limits{MaxBodyBytes: 10}).MaxFrameLen(); got != HeaderSize+DefaultMaxHeaderBytes+10 {
		t.Fatalf("MaxFrameLen %d", got)
	}
}
