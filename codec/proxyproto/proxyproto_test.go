package proxyproto

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("192.0.2.7:51234"), netip.MustParseAddrPort("127.0.0.1:9000")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:443"), netip.MustParseAddrPort("[::1]:9000")
	cases := []struct {
		name  string
		in    []byte
		want  Header
		trail string
	}{
		{"v1 tcp4", AppendV1(nil, src4, dst4), Header{Version: 1, Source: src4, Destination: dst4}, ""},
		{"v1 tcp6", AppendV1(nil, src6, dst6), Header{Version: 1, Source: src6, Destination: dst6}, ""},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true}, ""},
		{"v1 with payload", append(AppendV1(nil, src4, dst4), "MM\x01"...), Header{Version: 1, Source: src4, Destination: dst4}, "MM\x01"},
		{"v2 tcp4", AppendV2(nil, src4, dst4), Header{Version: 2, Source: src4, Destination: dst4}, ""},
		{"v2 tcp6", AppendV2(nil, src6, dst6), Header{Version: 2, Source: src6, Destination: dst6}, ""},
		{"v2 local", append([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"), "GET"...), Header{Version: 2, Local: true}, "GET"},
		{"v2 tlvs", append(append(append([]byte{}, sigV2...), 0x21, 0x11, 0, 15), 192, 0, 2, 7, 127, 0, 0, 1, 0xc8, 0x22, 0x23, 0x28, 4, 0, 0),
			Header{Version: 2, Source: src4, Destination: dst4}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if h != c.want {
				t.Fatalf("header = %+v, want %+v", h, c.want)
			}
			if got := string(c.in[n:]); got != c.trail {
				t.Fatalf("left %q, want %q", got, c.trail)
			}
			// Every strict prefix is "incomplete", never an error and never a header.
			for i := 0; i < n; i++ {
				if _, k, err := Parse(c.in[:i]); k != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: n=%d err=%v, want incomplete", i, k, err)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		offset int
		reason string
	}{
		{"no header", "GET / HTTP/1.1\r\n", 0, "no PROXY header"},
		{"mmtp magic", "MM\x01\x02", 0, "no PROXY header"},
		{"v1 bad sig", "PROXZ TCP4", 0, "bad v1 signature"},
		{"v1 proto", "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n", 6, "not TCP4"},
		{"v1 fields", "PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", 6, "has 4 fields"},
		{"v1 family mismatch", "PROXY TCP4 ::1 1.2.3.4 1 2\r\n", 11, "not a TCP4 address"},
		{"v1 port sign", "PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n", 11, "port \"+1\""},
		{"v1 port range", "PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", 11, "port \"65536\""},
		{"v1 leading zero", "PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", 11, "port \"01\""},
		{"v1 bare LF", "PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", 30, "CRLF"},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200), MaxV1, "longer than"},
		{"v2 version", "\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c", 12, "version 1"},
		{"v2 command", "\r\n\r\n\x00\r\nQUIT\n\x22\x11\x00\x0c", 12, "command 2"},
		{"v2 family", "\r\n\r\n\x00\r\nQUIT\n\x21\x12\x00\x00", 13, "0x12"},
		{"v2 short tcp4", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x04\x01\x02\x03\x04", 14, "want at least 12"},
		{"v2 huge", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", 14, "over 2048"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, n, err := Parse([]byte(c.in))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = n %d err %v, want *Error", n, err)
			}
			if pe.Offset != c.offset || !strings.Contains(pe.Reason, c.reason) {
				t.Fatalf("error %q at %d, want %q at %d", pe.Reason, pe.Offset, c.reason, c.offset)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	src, dst := netip.MustParseAddrPort("10.1.2.3:4000"), netip.MustParseAddrPort("127.0.0.1:9000")
	f.Add(AppendV1(nil, src, dst))
	f.Add(AppendV2(nil, src, dst))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error with n=%d", n)
			}
			return
		}
		if n > len(b) {
			t.Fatalf("n=%d past input of %d", n, len(b))
		}
		if n == 0 {
			return
		}
		// A decoded header re-encodes to one that decodes the same.
		if !h.Local {
			var again []byte
			if h.Version == 1 {
				again = AppendV1(nil, h.Source, h.Destination)
			} else {
				again = AppendV2(nil, h.Source, h.Destination)
			}
			h2, n2, err := Parse(again)
			if err != nil || n2 != len(again) || h2 != h {
				t.Fatalf("round trip of %+v: %+v n=%d err=%v", h, h2, n2, err)
			}
		}
	})
}
