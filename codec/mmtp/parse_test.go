package mmtp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// specExample is the REQUEST of mmtp.md's Example, byte for byte.
const specExample = "4d4d01020000001a0000000700000002" +
	"0e6f7065726174696f6e2d74797065" + "000964656d6f2e6563686f" + "6869"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSpecExample(t *testing.T) {
	b := mustHex(t, specExample)
	f, n, err := Parse(b, nil)
	if err != nil || n != len(b) {
		t.Fatalf("Parse = n %d, err %v; want n %d", n, err, len(b))
	}
	if f.Type != TypeRequest || f.StreamID != 7 || f.Flags != 0 || f.Entries != 1 || string(f.Body) != "hi" {
		t.Fatalf("frame %+v", f)
	}
	if v, ok := f.Get("operation-type"); !ok || string(v) != "demo.echo" {
		t.Fatalf("operation-type = %q, %v", v, ok)
	}
	if _, ok := f.Get("nope"); ok {
		t.Fatal("Get of an absent key succeeded")
	}
	if err := CheckClientFrame(&f); err != nil {
		t.Fatal(err)
	}
	enc := AppendRequest(nil, 7, "demo.echo", nil, []byte("hi"), false)
	if !bytes.Equal(enc, b) {
		t.Fatalf("AppendRequest =\n%x\nwant\n%x", enc, b)
	}
}

func TestParseIncremental(t *testing.T) {
	b := mustHex(t, specExample)
	for i := 0; i < len(b); i++ {
		_, n, err := Parse(b[:i], nil)
		if n != 0 || err != nil {
			t.Fatalf("prefix %d: n %d err %v, want incomplete", i, n, err)
		}
	}
	// Two frames back to back: Parse consumes exactly one.
	two := append(append([]byte{}, b...), b...)
	_, n, err := Parse(two, nil)
	if err != nil || n != len(b) {
		t.Fatalf("n %d err %v", n, err)
	}
}

func TestParseLimitsBeforeBody(t *testing.T) {
	// A fixed header alone declaring a 1 GiB body fails at once.
	h := []byte{0x4d, 0x4d, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0, 0, 0}
	_, _, err := Parse(h, nil)
	var pe *ProtocolError
	if !errors.As(err, &pe) || !pe.TooLarge || pe.Offset != 12 || pe.Field != FieldBodyLen {
		t.Fatalf("err = %v", err)
	}
	if GoAwayReason(err) != ReasonFrameTooLarge {
		t.Fatalf("reason %q", GoAwayReason(err))
	}
	lim := &Limits{MaxHeaderBytes: 10}
	b := mustHex(t, specExample)
	if _, _, err := Parse(b[:16], lim); !errors.As(err, &pe) || !pe.TooLarge || pe.Offset != 6 {
		t.Fatalf("header limit: err = %v", err)
	}
	lim = &Limits{MaxEntries: 1}
	two := AppendFrame(nil, TypeRequest, 0, 1, hdr("a", "1", "b", "2"), nil)
	if _, _, err := Parse(two, lim); !errors.As(err, &pe) || !pe.TooLarge || pe.Offset != 21 {
		t.Fatalf("entry limit: err = %v", err)
	}
}

func TestToRequest(t *testing.T) {
	b := AppendRequest(nil, 9, "alipay.trade.pay", hdr("App-Id", "wallet", "device-id", "d1"), []byte("body"), true)
	f, _, err := Parse(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := ToRequest(&f, codec.ConnInfo{Listener: "m"})
	for i := range b {
		b[i] = 0 // the request must not alias the buffer
	}
	if r.Operation != "alipay.trade.pay" || r.StreamID != 9 || !r.Gzip || string(r.Body) != "body" ||
		r.App() != "wallet" || r.Device() != "d1" || r.Protocol != codec.MMTP || r.Conn.Listener != "m" {
		t.Fatalf("request %+v", r)
	}
}

// TestParseStreamAndPingRules: the rules mmtp.md states and no more: a PING body over 8
// bytes and HELLO/REQUEST on stream 0 are protocol errors; a PONG's body is bounded only
// by the frame limits, and a PUSH_ACK on stream 0 (it names no push) parses.
func TestParseStreamAndPingRules(t *testing.T) {
	lim := Limits{MaxHeaderBytes: 16 << 10, MaxBodyBytes: 4 << 20, MaxEntries: 64}
	raw := func(typ Type, stream uint32, body []byte) []byte {
		b := []byte{'M', 'M', 1, byte(typ), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[8:], stream)
		binary.BigEndian.PutUint32(b[12:], uint32(len(body)))
		return append(b, body...)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"PING 9 bytes", raw(TypePing, 0, []byte("123456789")), false},
		{"PONG 9 bytes", raw(TypePong, 0, []byte("123456789")), true},
		{"PUSH_ACK stream 0", raw(TypePushAck, 0, nil), true},
		{"REQUEST stream 0", raw(TypeRequest, 0, nil), false},
		{"HELLO stream 0", raw(TypeHello, 0, nil), false},
	} {
		_, _, err := Parse(tc.b, &lim)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
