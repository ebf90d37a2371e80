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

// RFC 9112 7.1.1 allows BWS around ';' and '=' in chunk extensions, and quoted-string
// values with quoted-pairs; all of them are parsed and ignored.
func TestChunkExtensionsRFC9112(t *testing.T) {
	const te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, ext := range []string{
		`;name="a;b"`,
		`;name="a\"b\\c"`,
		` ;a`,
		"\t; a = b",
		` ; name = "x y" ; last`,
		`;a= "q";b =t`,
		`;a="` + "\t" + `caf` + "\xc3\xa9" + `"`,
	} {
		in := te + "5" + ext + "\r\nhello\r\n0" + ext + "\r\n\r\n"
		for _, sp := range []func(int) int{whole, oneByte} {
			reqs, rest, err := parseStream([]byte(in), nil, sp)
			if err != nil || len(reqs) != 1 || len(rest) != 0 || string(reqs[0].body) != "hello" {
				t.Errorf("ext %q: %d requests, rest %q, err %v", ext, len(reqs), rest, err)
			}
		}
	}
	for _, tt := range []struct{ ext, reason string }{
		{` `, `invalid byte ' ' in chunk size at offset 1`}, // BWS only before ';'
		{`;a `, `' ' in chunk extension at offset 2`},       // ... or '='
		{`;a=b `, `' ' in chunk extension at offset 4`},
		{`;a="b" c`, `'c' in chunk extension`},
		{`; `, `' ' in chunk extension at offset 1`},
		{`;a=`, "empty chunk extension value"},
		{`;a= `, `' ' in chunk extension at offset 3`},
		{`;a="b`, "unterminated quoted string"},
		{`;a="b\`, "unterminated quoted string"},
		{`;a="` + "\x7f" + `"`, `'\x7f' in chunk extension at offset 4`},
		{`;a="b\` + "\x01" + `"`, `'\x01' in chunk extension at offset 6`},
		{`;a@b`, `'@' in chunk extension at offset 2`},
		{";" + strings.Repeat("a", maxChunkLine), "chunk-size line longer"},
	} {
		in := te + "5" + tt.ext + "\r\nhello\r\n0\r\n\r\n"
		_, _, err := parseStream([]byte(in), nil, whole)
		if e := AsError(err); e == nil || e.Status != 400 || !strings.Contains(e.Reason, tt.reason) {
			t.Errorf("ext %q: %v; want 400 containing %q", tt.ext, err, tt.reason)
		}
	}
}

// A request line longer than the head limit is 414 URI Too Long (RFC 9112 3), whole or
// arriving slowly; 431 stays for header fields over it.
func TestRequestLineTooLong(t *testing.T) {
	lim := &Limits{MaxHeadBytes: 100}
	long := "GET /" + strings.Repeat("a", 120) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, in := range []string{long, long[:110], "\r\n" + long, "GET /" + strings.Repeat("a", 96)} {
		for _, sp := range []func(int) int{whole, oneByte} {
			_, _, err := parseStream([]byte(in), lim, sp)
			if e := AsError(err); e == nil || e.Status != 414 || !strings.Contains(e.Reason, "request line longer than 100 bytes") {
				t.Errorf("%d-byte input: %v, want 414", len(in), err)
			}
		}
	}
	// The line fits, the fields do not: 431.
	fields := "GET /" + strings.Repeat("a", 60) + " HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("v", 40) + "\r\n\r\n"
	for _, sp := range []func(int) int{whole, oneByte} {
		if _, _, err := parseStream([]byte(fields), lim, sp); AsError(err) == nil || AsError(err).Status != 431 {
			t.Errorf("fields over the limit: %v, want 431", err)
		}
	}
	if StatusText(414) != "URI Too Long" {
		t.Errorf("StatusText(414) = %q", StatusText(414))
	}
}
