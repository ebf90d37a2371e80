package http1

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

func TestToRequest(t *testing.T) {
	conn := codec.ConnInfo{Listener: "web", ClientAddr: netip.MustParseAddrPort("10.0.0.1:5000")}
	tests := []struct {
		in, op string
		gzip   bool
	}{
		{"POST /api/user.get HTTP/1.1\r\nHost: a\r\n\r\n", "user.get", false},
		{"POST /api/user.get?x=1&y=/z HTTP/1.1\r\nHost: a\r\n\r\n", "user.get", false},
		{"POST http://a/api/pay HTTP/1.1\r\nHost: a\r\n\r\n", "pay", false},
		{"POST /api/ HTTP/1.1\r\nHost: a\r\n\r\n", "", false},
		{"POST /api/a/b HTTP/1.1\r\nHost: a\r\nOperation-Type: hdr.op\r\n\r\n", "hdr.op", false},
		{"GET /api/user.get HTTP/1.1\r\nHost: a\r\n\r\n", "", false},
		{"GET /x HTTP/1.1\r\nHost: a\r\nOperation-Type: o.p\r\nContent-Encoding: GZIP\r\n\r\n", "o.p", true},
		{"POST /apix/y HTTP/1.1\r\nHost: a\r\nContent-Encoding: br\r\n\r\n", "", false},
	}
	for _, tt := range tests {
		h, _ := mustParse(t, tt.in)
		body := []byte("b")
		r := ToRequest(h, body, conn)
		if r.Operation != tt.op || r.Gzip != tt.gzip {
			t.Errorf("%q: op %q gzip %v, want %q %v", tt.in, r.Operation, r.Gzip, tt.op, tt.gzip)
		}
		if r.Protocol != codec.HTTP1 || r.Method != h.Method || r.Target != originForm(h.Method, h.Target) || r.Minor != 1 ||
			r.Conn != conn || &r.Body[0] != &body[0] || r.Header.Value("host") != "a" {
			t.Errorf("%q: request %+v", tt.in, r)
		}
		// The request's header must survive the head being reused.
		before := r.Header[0]
		mustParseInto(t, "GET /other HTTP/1.1\r\nHost: other\r\n\r\n", h)
		if r.Header[0] != before || r.Header[0].Value != "a" {
			t.Errorf("header changed after reuse: %q", r.Header[0])
		}
	}
}

func mustParseInto(t *testing.T, in string, h *RequestHead) {
	t.Helper()
	b := []byte(in)
	if n, err := ParseHead(b, nil, h); n != len(b) || err != nil {
		t.Fatalf("ParseHead(%q) = %d, %v", in, n, err)
	}
	for i := range b { // the caller's buffer is reused too; the head must not alias it
		b[i] = 'X'
	}
	if h.Header[0].Value == "XXXXX" {
		t.Fatal("head aliases the read buffer")
	}
}

func TestHopByHop(t *testing.T) {
	for _, name := range []string{"Connection", "keep-alive", "TE", "Transfer-Encoding", "upgrade", "Proxy-Authorization", "proxy-connection", "trailer", "proxy-authenticate"} {
		if !IsHopByHop(name) {
			t.Errorf("IsHopByHop(%q) = false", name)
		}
	}
	for _, name := range hopByHop { // the definition, in every case
		for _, n := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			if !IsHopByHop(n) {
				t.Errorf("IsHopByHop(%q) = false", n)
			}
		}
		// The same length, one byte off: the switch on length must still compare.
		if n := name[:len(name)-1] + "x"; IsHopByHop(n) {
			t.Errorf("IsHopByHop(%q) = true", n)
		}
	}
	for _, name := range []string{"content-length", "host", "trailers", "x-connection", ""} {
		if IsHopByHop(name) {
			t.Errorf("IsHopByHop(%q) = true", name)
		}
	}
	var got []string
	ConnectionTokens(" Keep-Alive ,, X-Foo,close ,", func(n string) { got = append(got, n) })
	if len(got) != 3 || got[0] != "keep-alive" || got[1] != "x-foo" || got[2] != "close" {
		t.Errorf("ConnectionTokens = %q", got)
	}
	ConnectionTokens("", func(n string) { t.Errorf("token %q from empty value", n) })
}

func TestIsAPIRequest(t *testing.T) {
	for in, want := range map[string]bool{
		"POST /api/a.b HTTP/1.1\r\nHost: a\r\n\r\n":                       true,
		"GET /x HTTP/1.1\r\nHost: a\r\nOperation-Type: a.b\r\n\r\n":       true,
		"GET /api/a.b HTTP/1.1\r\nHost: a\r\n\r\n":                        false,
		"POST /api/a/b HTTP/1.1\r\nHost: a\r\n\r\n":                       false,
		"POST /static/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n": false,
	} {
		h, _ := mustParse(t, in)
		if got := IsAPIRequest(h); got != want {
			t.Errorf("IsAPIRequest(%q) = %v, want %v", in, got, want)
		}
	}
}
