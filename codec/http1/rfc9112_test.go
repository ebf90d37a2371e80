package http1

import (
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// RFC 9112 3.2.2: an absolute-form request reaches the gateway's request path as the
// origin-form request a proxy would forward, with Host taken from the target's authority
// whatever the Host field said.
func TestAbsoluteFormToOriginForm(t *testing.T) {
	tests := []struct {
		in, target, host, op string
	}{
		{"GET http://b.example:8080/x/y?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", "/x/y?q=1", "b.example:8080", ""},
		{"GET http://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n", "/", "b.example", ""},
		{"GET http://b.example?q HTTP/1.1\r\nHost: b.example\r\n\r\n", "/?q", "b.example", ""},
		{"OPTIONS http://b.example HTTP/1.1\r\nHost: x\r\n\r\n", "*", "b.example", ""},
		{"OPTIONS http://b.example/p HTTP/1.1\r\nHost: x\r\n\r\n", "/p", "b.example", ""},
		{"POST HTTP://B.example/api/demo.echo HTTP/1.1\r\nHost: x\r\n\r\n", "/api/demo.echo", "B.example", "demo.echo"},
		{"GET http://[::1]:80/ HTTP/1.1\r\nHost: x\r\n\r\n", "/", "[::1]:80", ""},
		// HTTP/1.0 needs no Host field; the authority still becomes one.
		{"GET http://b.example/z HTTP/1.0\r\n\r\n", "/z", "b.example", ""},
		// Origin-form is left alone.
		{"GET /o?p HTTP/1.1\r\nHost: a\r\n\r\n", "/o?p", "a", ""},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "*", "a", ""},
	}
	for _, tt := range tests {
		h, _ := mustParse(t, tt.in)
		r := ToRequest(h, nil, codec.ConnInfo{})
		hosts := 0
		for _, f := range r.Header {
			if f.Key == "host" {
				hosts++
			}
		}
		if r.Target != tt.target || r.Header.Value("host") != tt.host || hosts != 1 || r.Operation != tt.op {
			t.Errorf("%q: target %q host %q (%d Host fields) op %q; want %q %q (1) %q",
				tt.in, r.Target, r.Header.Value("host"), hosts, r.Operation, tt.target, tt.host, tt.op)
		}
		if IsAPIRequest(h) != (tt.op != "") {
			t.Errorf("%q: IsAPIRequest = %v", tt.in, !(tt.op != ""))
		}
	}
}

// Target forms the gateway refuses: absolute-form only for http (it has no TLS towards the
// client to speak for an https URI), no empty authority (RFC 9110 4.2.1), and no CONNECT
// tunnels.
func TestTargetFormRejects(t *testing.T) {
	tests := []struct {
		name, in string
		status   int
		reason   string
	}{
		{"https", "GET https://b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400, `scheme "https"`},
		{"ftp", "GET ftp://b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400, `scheme "ftp"`},
		{"empty authority", "GET http:///x HTTP/1.1\r\nHost: b\r\n\r\n", 400, "empty authority"},
		{"empty authority query", "GET http://?x HTTP/1.1\r\nHost: b\r\n\r\n", 400, "empty authority"},
		{"CONNECT", "CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", 501, "CONNECT"},
		{"CONNECT bad target", "CONNECT /x HTTP/1.1\r\nHost: b\r\n\r\n", 400, "authority-form"},
	}
	for _, tt := range tests {
		var h RequestHead
		_, err := ParseHead([]byte(tt.in), nil, &h)
		if e := AsError(err); e == nil || e.Status != tt.status || !strings.Contains(e.Reason, tt.reason) {
			t.Errorf("%s: %v; want %d containing %q", tt.name, err, tt.status, tt.reason)
		}
	}
}
