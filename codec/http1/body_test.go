package http1

import (
	"bytes"
	"strings"
	"testing"
)

// parsed is one request as parseStream saw it.
type parsed struct {
	head RequestHead
	body []byte
	off  int // where the request (including any empty lines before it) starts in the input
}

// parseStream feeds in to the parser the way the reactor does: the pending bytes plus
// the next piece, keeping what was not consumed. split(i) says how many bytes arrive in
// read i (0 means all the rest at once). It returns the requests, the unconsumed tail and
// the first error.
func parseStream(in []byte, lim *Limits, split func(i int) int) ([]parsed, []byte, error) {
	var (
		out     []parsed
		pending []byte
		h       RequestHead
		d       BodyDecoder
		inBody  bool
		body    []byte
		fed     int // input bytes appended to pending so far
		off     int
	)
	for read := 0; len(in) > 0; read++ {
		k := split(read)
		if k <= 0 || k > len(in) {
			k = len(in)
		}
		pending = append(pending, in[:k]...)
		in = in[k:]
		fed += k
		for {
			if !inBody {
				off = fed - len(pending)
				n, err := ParseHead(pending, lim, &h)
				if err != nil {
					return out, pending, err
				}
				if n == 0 {
					break
				}
				pending = pending[n:]
				d.Reset(&h, lim)
				inBody, body = true, []byte{}
			}
			data, n, done, err := d.Decode(pending)
			if err != nil {
				return out, pending, err
			}
			body = append(body, data...)
			pending = pending[n:]
			if done {
				hc := h
				hc.Header = append(hc.Header[:0:0], h.Header...)
				out = append(out, parsed{head: hc, body: body, off: off})
				inBody = false
				continue
			}
			if data == nil {
				break
			}
		}
	}
	return out, pending, nil
}

func whole(int) int   { return 0 }
func oneByte(int) int { return 1 }

func TestBodyDecode(t *testing.T) {
	tests := []struct {
		name, in, body string
	}{
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"content-length zero", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", ""},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
		{"chunked upper hex and ext", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA;name=\"v;x\"\r\n0123456789\r\n0;last\r\n\r\n", "0123456789"},
		{"chunked ext forms", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;a;b=c;d=\"e f\\\"g\";h=\"\"\r\nhi\r\n0;last\r\n\r\n", "hi"},
		{"chunked leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\n", "hello"},
		{"chunked trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-B:2\r\n\r\n", "hi"},
		{"chunked empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ""},
	}
	for _, tt := range tests {
		for _, sp := range []struct {
			name string
			f    func(int) int
		}{{"whole", whole}, {"bytewise", oneByte}} {
			t.Run(tt.name+"/"+sp.name, func(t *testing.T) {
				reqs, rest, err := parseStream([]byte(tt.in), nil, sp.f)
				if err != nil || len(reqs) != 1 || len(rest) != 0 {
					t.Fatalf("got %d requests, rest %q, err %v", len(reqs), rest, err)
				}
				if string(reqs[0].body) != tt.body {
					t.Errorf("body = %q, want %q", reqs[0].body, tt.body)
				}
			})
		}
	}
}

func TestBodyRejects(t *testing.T) {
	const te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, in string
		status   int
		reason   string
	}{
		{"size sign", te + "+5\r\nhello\r\n0\r\n\r\n", 400, "invalid byte '+' in chunk size"},
		{"size 0x", te + "0x5\r\nhello\r\n0\r\n\r\n", 400, "invalid byte 'x' in chunk size"},
		{"size leading space", te + " 5\r\nhello\r\n0\r\n\r\n", 400, "invalid byte ' ' in chunk size"},
		{"size trailing space", te + "5 \r\nhello\r\n0\r\n\r\n", 400, "chunk size at offset 1"},
		{"space before non-ext", te + "5 x\r\nhello\r\n0\r\n\r\n", 400, "chunk size at offset 1"},
		{"size empty", te + "\r\nhello\r\n0\r\n\r\n", 400, "empty chunk size"},
		{"size non-hex", te + "g\r\n", 400, "invalid byte 'g'"},
		{"size overflow", te + "fffffffffffffffff\r\n", 400, "overflows"},
		{"size bare LF", te + "5\nhello\r\n0\r\n\r\n", 400, "bare LF in chunk-size"},
		{"ext control", te + "5;a=\x01\r\nhello\r\n0\r\n\r\n", 400, "chunk extension"},
		{"ext control in quotes", te + "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 400, `'\x01' in chunk extension`},
		{"ext unterminated quote", te + "5;a=\"x\r\nhello\r\n0\r\n\r\n", 400, "unterminated quoted string"},
		{"ext quote spans CRLF", te + "5;a=\"\r\n\"\r\nhello\r\n0\r\n\r\n", 400, "unterminated quoted string"},
		{"ext empty name", te + "5;\r\nhello\r\n0\r\n\r\n", 400, "empty chunk extension name"},
		{"ext empty value", te + "5;a=\r\nhello\r\n0\r\n\r\n", 400, "empty chunk extension value"},
		{"ext trailing space", te + "5; a=b \r\nhello\r\n0\r\n\r\n", 400, "' ' in chunk extension at offset 5"},
		{"ext junk after quote", te + "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", 400, "'c' in chunk extension"},
		{"data longer", te + "5\r\nhello!\r\n0\r\n\r\n", 400, "missing CRLF after chunk data"},
		{"data bare LF", te + "5\r\nhello\n0\r\n\r\n", 400, "missing CRLF after chunk data"},
		{"chunk line endless", te + strings.Repeat("0", maxChunkLine), 400, "chunk-size line longer"},
		{"trailer obs-fold", te + "0\r\nX: a\r\n b\r\n\r\n", 400, "obsolete line folding in trailer"},
		{"trailer no colon", te + "0\r\nX\r\n\r\n", 400, "no colon"},
		{"trailer bare LF", te + "0\r\nX: a\n\r\n", 400, "bare LF in trailer"},
		{"trailer space before colon", te + "0\r\nX : a\r\n\r\n", 400, "whitespace between trailer field name"},
		{"trailer control", te + "0\r\nX: \x00\r\n\r\n", 400, "trailer field"},
		{"trailer too large", te + "0\r\nX: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431, "trailer section larger"},
		{"trailer too many", te + "0\r\n" + strings.Repeat("X: a\r\n", 101) + "\r\n", 431, "more than 100 trailer fields"},
		{"chunked over limit", te + "400001\r\n", 413, "chunked body over the 4194304 byte limit"},
	}
	for _, tt := range tests {
		for _, sp := range []struct {
			name string
			f    func(int) int
		}{{"whole", whole}, {"bytewise", oneByte}} {
			t.Run(tt.name+"/"+sp.name, func(t *testing.T) {
				_, _, err := parseStream([]byte(tt.in), nil, sp.f)
				e := AsError(err)
				if e == nil {
					t.Fatalf("err = %v, want status %d", err, tt.status)
				}
				if e.Status != tt.status || !strings.Contains(e.Reason, tt.reason) {
					t.Errorf("got %d %q; want %d containing %q", e.Status, e.Reason, tt.status, tt.reason)
				}
			})
		}
	}
}

func TestChunkedOverLimitAcrossChunks(t *testing.T) {
	lim := &Limits{MaxBodyBytes: 10}
	in := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n"
	_, _, err := parseStream([]byte(in), lim, whole)
	if e := AsError(err); e == nil || e.Status != 413 {
		t.Fatalf("err = %v, want 413", err)
	}
	in = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n"
	reqs, _, err := parseStream([]byte(in), lim, whole)
	if err != nil || len(reqs) != 1 || string(reqs[0].body) != "abcdefghij" {
		t.Fatalf("at the limit: %v %v", reqs, err)
	}
}

func TestPipelined(t *testing.T) {
	in := "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" +
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"\r\n" + // a stray CRLF after a body, which RFC 9112 2.2 lets us skip
		"GET /d HTTP/1.0\r\n\r\n" +
		"GET /e HTTP/1.1\r\nHo" // incomplete: stays pending
	for _, sp := range []func(int) int{whole, oneByte, func(i int) int { return 7 + i%5 }} {
		reqs, rest, err := parseStream([]byte(in), nil, sp)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range reqs {
			got = append(got, r.head.Method+" "+r.head.Target+" "+string(r.body))
		}
		want := []string{"GET /a ", "POST /b xyz", "POST /c abc", "GET /d "}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("got %q, want %q", got, want)
		}
		if string(rest) != "GET /e HTTP/1.1\r\nHo" {
			t.Errorf("rest = %q", rest)
		}
	}
}

// TestDecodeStreams checks that a large Content-Length body is delivered in pieces as
// they arrive, aliasing the input, without waiting for the whole body.
func TestDecodeStreams(t *testing.T) {
	h := RequestHead{ContentLength: 10}
	var d BodyDecoder
	d.Reset(&h, nil)
	data, n, done, err := d.Decode([]byte("abcd"))
	if err != nil || n != 4 || done || string(data) != "abcd" {
		t.Fatalf("first piece: %q %d %v %v", data, n, done, err)
	}
	data, n, done, err = d.Decode([]byte("efghijGET"))
	if err != nil || n != 6 || !done || string(data) != "efghij" || !d.Done() {
		t.Fatalf("second piece: %q %d %v %v", data, n, done, err)
	}
	if data, n, done, err = d.Decode(nil); data != nil || n != 0 || !done || err != nil {
		t.Fatalf("after done: %q %d %v %v", data, n, done, err)
	}
}

// TestIncompleteHeadLimit checks that a head still arriving is refused once it passes the
// limit, and that a hopeless request line is refused before it completes.
func TestIncompleteHeadLimit(t *testing.T) {
	lim := &Limits{MaxHeadBytes: 64}
	var h RequestHead
	in := []byte("GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 30))
	if n, err := ParseHead(in, lim, &h); n != 0 || err != nil {
		t.Fatalf("short incomplete head: %d %v", n, err)
	}
	in = append(in, bytes.Repeat([]byte("y"), 40)...)
	if _, err := ParseHead(in, lim, &h); AsError(err) == nil || AsError(err).Status != 431 {
		t.Fatalf("long incomplete head: %v, want 431", err)
	}
	h.Reset()
	for _, bad := range []string{"\x16\x03\x01\x02\x00\x01", "GET /\x00", "GET / HTTP/9.9\r\n"} {
		if _, err := ParseHead([]byte(bad), nil, &h); AsError(err) == nil {
			t.Errorf("ParseHead(%q) accepted an incomplete but hopeless head", bad)
		}
	}
	// Endless empty lines count against the limit.
	if _, err := ParseHead(bytes.Repeat([]byte("\r\n"), 40), lim, &h); AsError(err) == nil || AsError(err).Status != 431 {
		t.Errorf("endless empty lines: %v, want 431", err)
	}
}
