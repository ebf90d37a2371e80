package http1

import (
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

func mustParse(t *testing.T, in string) (*RequestHead, int) {
	t.Helper()
	var h RequestHead
	n, err := ParseHead([]byte(in), nil, &h)
	if err != nil {
		t.Fatalf("ParseHead(%q): %v", in, err)
	}
	if n == 0 {
		t.Fatalf("ParseHead(%q): incomplete", in)
	}
	return &h, n
}

func TestParseHeadValid(t *testing.T) {
	in := "POST /api/user.get?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type:application/json \r\n" +
		"X-Tab:\t a\tb \t\r\nContent-Length: 5\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\nhello"
	h, n := mustParse(t, in)
	if n != len(in)-5 {
		t.Errorf("n = %d, want %d", n, len(in)-5)
	}
	if h.Method != "POST" || h.Target != "/api/user.get?x=1" || h.Minor != 1 {
		t.Errorf("request line = %q %q %d", h.Method, h.Target, h.Minor)
	}
	want := codec.Header{
		{Key: "host", Value: "example.com"},
		{Key: "content-type", Value: "application/json"},
		{Key: "x-tab", Value: "a\tb"},
		{Key: "content-length", Value: "5"},
		{Key: "x-empty", Value: ""},
		{Key: "x-obs", Value: "caf\xc3\xa9"},
	}
	if len(h.Header) != len(want) {
		t.Fatalf("header = %q, want %q", h.Header, want)
	}
	for i := range want {
		if h.Header[i] != want[i] {
			t.Errorf("field %d = %q, want %q", i, h.Header[i], want[i])
		}
	}
	if h.ContentLength != 5 || h.Chunked || !h.KeepAlive || h.ExpectContinue || h.Host != "example.com" {
		t.Errorf("semantics = cl %d chunked %v ka %v expect %v host %q", h.ContentLength, h.Chunked, h.KeepAlive, h.ExpectContinue, h.Host)
	}
}

func TestParseHeadSemantics(t *testing.T) {
	tests := []struct {
		name, in  string
		cl        int64
		chunked   bool
		keepAlive bool
		expect    bool
		host      string
	}{
		{"1.1 default keep-alive", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false, "a"},
		{"1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", -1, false, false, false, "a"},
		{"1.1 close in list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo , close\r\n\r\n", -1, false, false, false, "a"},
		{"1.0 default close", "GET / HTTP/1.0\r\n\r\n", -1, false, false, false, ""},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", -1, false, true, false, ""},
		{"1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", -1, false, false, false, ""},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", -1, true, true, false, "a"},
		{"expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n", 5, false, true, true, "a"},
		{"expect chunked", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", -1, true, true, true, "a"},
		{"expect without body", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", 0, false, true, false, "a"},
		{"expect other", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 1, false, true, false, "a"},
		{"expect ignored in 1.0", "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", -1, false, false, false, ""},
		{"identical CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\n\r\n", 7, false, true, false, "a"},
		{"identical CL fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n", 7, false, true, false, "a"},
		{"absolute-form wins over Host", "GET http://b.example:80/x HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false, "b.example:80"},
		{"options asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false, "a"},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false, "a"},
		{"percent-encoded target", "GET /a%2Fb%41?q=%7e HTTP/1.1\r\nHost: a\r\n\r\n", -1, false, true, false, "a"},
		{"version 1.2 is 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", -1, false, true, false, "a"},
		{"version 1.9 is 1.1", "GET / HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n", -1, false, false, false, "a"},
		{"ipv6 host", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", -1, false, true, false, "[::1]:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n := mustParse(t, tt.in)
			if n != len(tt.in) {
				t.Errorf("n = %d, want %d", n, len(tt.in))
			}
			if h.ContentLength != tt.cl || h.Chunked != tt.chunked || h.KeepAlive != tt.keepAlive ||
				h.ExpectContinue != tt.expect || h.Host != tt.host {
				t.Errorf("got cl %d chunked %v ka %v expect %v host %q; want cl %d chunked %v ka %v expect %v host %q",
					h.ContentLength, h.Chunked, h.KeepAlive, h.ExpectContinue, h.Host,
					tt.cl, tt.chunked, tt.keepAlive, tt.expect, tt.host)
			}
		})
	}
}

func TestParseHeadRejects(t *testing.T) {
	const ok = "GET / HTTP/1.1\r\nHost: a\r\n"
	tests := []struct {
		name, in string
		status   int
		reason   string // a substring of Error.Reason
	}{
		// framing
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "both Content-Length and Transfer-Encoding"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, "both"},
		{"CL differing list", ok + "Content-Length: 1, 2\r\n\r\n", 400, "conflicting Content-Length"},
		{"CL differing fields", ok + "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting Content-Length"},
		{"CL plus sign", ok + "Content-Length: +5\r\n\r\n", 400, "invalid byte '+' in Content-Length"},
		{"CL minus sign", ok + "Content-Length: -5\r\n\r\n", 400, "invalid byte '-'"},
		{"CL hex", ok + "Content-Length: 0x5\r\n\r\n", 400, "invalid byte 'x'"},
		{"CL inner space", ok + "Content-Length: 1 2\r\n\r\n", 400, "invalid byte ' '"},
		{"CL empty", ok + "Content-Length:\r\n\r\n", 400, "empty Content-Length"},
		{"CL empty element", ok + "Content-Length: 5,\r\n\r\n", 400, "empty element in Content-Length"},
		{"CL overflow", ok + "Content-Length: 9223372036854775808\r\n\r\n", 400, "overflows"},
		{"CL over body limit", ok + "Content-Length: 4194305\r\n\r\n", 413, "Content-Length 4194305"},
		{"TE gzip", ok + "Transfer-Encoding: gzip\r\n\r\n", 400, `final transfer-coding "gzip" is not chunked`},
		{"TE gzip chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, `"gzip" not implemented`},
		{"TE gzip then chunked fields", ok + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501, `"gzip" not implemented`},
		{"TE chunked gzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "final transfer-coding"},
		{"TE chunked gzip params", ok + "Transfer-Encoding: chunked, gzip;level=1\r\n\r\n", 400, "final transfer-coding"},
		{"TE chunked then gzip fields", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "final transfer-coding"},
		{"TE identity", ok + "Transfer-Encoding: identity\r\n\r\n", 400, "identity"},
		{"TE chunked twice", ok + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "applied twice"},
		{"TE chunked twice fields", ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "applied twice"},
		{"TE empty", ok + "Transfer-Encoding:\r\n\r\n", 400, "empty Transfer-Encoding"},
		{"TE empty element", ok + "Transfer-Encoding: ,chunked\r\n\r\n", 400, "empty element"},
		{"TE params", ok + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400, "parameters"},
		{"TE vertical tab", ok + "Transfer-Encoding: \vchunked\r\n\r\n", 400, `'\v'`},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "empty Host"},
		{"blank Host", "GET / HTTP/1.1\r\nHost:  \t \r\n\r\n", 400, "empty Host"},
		{"empty Host 1.0", "GET / HTTP/1.0\r\nHost:\r\n\r\n", 400, "empty Host"},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0"},
		// field syntax
		{"obs-fold", ok + "X-A: 1\r\n  2\r\n\r\n", 400, "obsolete line folding"},
		{"obs-fold tab", ok + "X-A: 1\r\n\t2\r\n\r\n", 400, "obsolete line folding"},
		{"space before colon", ok + "Content-Length : 5\r\n\r\n", 400, `whitespace between header field name "Content-Length" and colon`},
		{"tab before colon", ok + "X-A\t: 5\r\n\r\n", 400, "whitespace between"},
		{"space in name", ok + "X A: 5\r\n\r\n", 400, "whitespace between"},
		{"control in name", ok + "X\x01A: 5\r\n\r\n", 400, `'\x01' in header field name`},
		{"non-ASCII in name", ok + "X\xc3\xa9: 5\r\n\r\n", 400, "header field name"},
		{"empty name", ok + ": 5\r\n\r\n", 400, "empty header field name"},
		{"no colon", ok + "X-A\r\n\r\n", 400, "has no colon"},
		{"NUL in value", ok + "X-A: a\x00b\r\n\r\n", 400, `'\x00' in header field "X-A" value`},
		{"bare CR in value", ok + "X-A: a\rb\r\n\r\n", 400, `'\r' in header field "X-A" value`},
		{"DEL in value", ok + "X-A: a\x7fb\r\n\r\n", 400, `'\x7f'`},
		{"ESC in value", ok + "X-A: \x1b[31m\r\n\r\n", 400, `'\x1b'`},
		// bare LF
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF without CR at offset 14"},
		{"bare LF field", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF"},
		{"bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF"},
		{"bare LF first", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF"},
		// request line
		{"lower method ok but bad byte", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid byte '@' in method"},
		{"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "in method at offset 0"},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "start of request-target"},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, `'\t' in method`},
		{"no version", "GET /\r\nHost: a\r\n\r\n", 400, "no HTTP version"},
		{"no target", "GET\r\nHost: a\r\n\r\n", 400, "no request-target"},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"control in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400, `'\x01' in request-target`},
		{"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target"},
		{"bad percent", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed percent-encoding in request-target at offset 6"},
		{"truncated percent", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed percent-encoding"},
		{"percent after good", "GET /%41%2f%G0 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "offset 11"},
		{"bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "invalid Host"},
		{"bad port absolute", "GET http://a:8:0/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid authority"},
		{"CONNECT no port", "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", 400, "authority-form"},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "'#'"},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "neither origin-form nor absolute-form"},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk-form"},
		{"CONNECT path", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "authority-form"},
		{"userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid authority"},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "not supported"},
		{"version 0.9", "GET / HTTP/0.9\r\n\r\n", 505, "not supported"},
		{"version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed"},
		// Host
		{"missing host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "missing Host"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "multiple Host"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, `invalid Host "a b"`},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
		// limits
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 100) + "\r\n", 431, "more than 100 header fields"},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 16<<10) + "\r\n\r\n", 431, "larger than 16384"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h RequestHead
			n, err := ParseHead([]byte(tt.in), nil, &h)
			e := AsError(err)
			if e == nil {
				t.Fatalf("ParseHead(%q) = %d, %v; want status %d", tt.in, n, err, tt.status)
			}
			if e.Status != tt.status || !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("ParseHead(%q) = %d %q; want %d containing %q", tt.in, e.Status, e.Reason, tt.status, tt.reason)
			}
			if n != 0 {
				t.Errorf("n = %d with an error", n)
			}
		})
	}
}

// TestParseHeadResume checks the resume contract: an incomplete head continues where it
// left off, and a forgotten Reset before unrelated bytes cannot make ParseHead consume
// more than one head or miss a bare LF.
func TestParseHeadResume(t *testing.T) {
	var h RequestHead
	full := "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 100) + "\r\n\r\n"
	for i := 1; i < len(full); i++ {
		if n, err := ParseHead([]byte(full[:i]), nil, &h); n != 0 || err != nil {
			t.Fatalf("prefix %d: %d %v", i, n, err)
		}
	}
	if n, err := ParseHead([]byte(full), nil, &h); n != len(full) || err != nil {
		t.Fatalf("full: %d %v", n, err)
	}

	// Misuse: progress from a long incomplete head, then unrelated bytes.
	h.Reset()
	ParseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-Long: "+strings.Repeat("v", 100)), nil, &h)
	other := "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 20) + "\r\n"
	n, err := ParseHead([]byte(other), nil, &h)
	if err == nil && n != len("GET / HTTP/1.1\r\nHost: a\r\n\r\n") {
		t.Fatalf("stale progress consumed %d bytes", n)
	}
	h.Reset()
	ParseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-Long: "+strings.Repeat("v", 100)), nil, &h)
	other = "GET / HTTP/1.1\nHost: a\r\n" + strings.Repeat("X: y\r\n", 30) + "\r\n"
	if _, err := ParseHead([]byte(other), nil, &h); err == nil {
		t.Fatal("stale progress let a bare LF through")
	}
	// Stale progress pointing into the middle of a line, at every offset: never a panic,
	// never more than the head consumed.
	stale := "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 60)
	for _, other := range []string{
		"\nET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 20) + "\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y\r\n", 40) + "\r\n",
		strings.Repeat("\r\n", 50) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		for cut := 0; cut <= len(stale); cut++ {
			h.Reset()
			ParseHead([]byte(stale[:cut]), nil, &h)
			n, err := ParseHead([]byte(other), nil, &h)
			if err == nil && n > 0 && other[n-4:n] != "\r\n\r\n" {
				t.Fatalf("stale progress from %d: consumed %d bytes of %q", cut, n, other)
			}
		}
	}
}

// TestHeadLimitBoundary: a head of exactly MaxHeadBytes (final CRLF included) passes,
// one byte more is 431, whole or arriving in pieces.
func TestHeadLimitBoundary(t *testing.T) {
	lim := &Limits{MaxHeadBytes: 100}
	build := func(size int) []byte {
		pre := "GET / HTTP/1.1\r\nHost: a\r\nX: "
		return []byte(pre + strings.Repeat("v", size-len(pre)-4) + "\r\n\r\n")
	}
	for _, sp := range []func(int) int{whole, oneByte} {
		if reqs, _, err := parseStream(build(100), lim, sp); err != nil || len(reqs) != 1 {
			t.Errorf("100-byte head: %d requests, %v", len(reqs), err)
		}
		if _, _, err := parseStream(build(101), lim, sp); AsError(err) == nil || AsError(err).Status != 431 {
			t.Errorf("101-byte head: %v, want 431", err)
		}
	}
	h := RequestHead{}
	fields := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 2) + "\r\n"
	if _, err := ParseHead([]byte(fields), &Limits{MaxHeaders: 3}, &h); err != nil {
		t.Errorf("3 fields with MaxHeaders 3: %v", err)
	}
	if _, err := ParseHead([]byte(fields), &Limits{MaxHeaders: 2}, &h); AsError(err) == nil || AsError(err).Status != 431 {
		t.Errorf("3 fields with MaxHeaders 2: %v, want 431", err)
	}
}
