package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

func parseResp(raw string, max int64) (*h1Response, error) {
	return readResponse(bufio.NewReaderSize(strings.NewReader(raw), 4096), max)
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		status int
		body   string
		keep   bool
		header codec.Header
		gzip   bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", 200, "hello", true,
			codec.Header{{Key: "content-type", Value: "text/plain"}}, false},
		{"no reason phrase", "HTTP/1.1 204\r\n\r\n", 204, "", true, nil, false},
		{"chunked with extension and trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
			200, "abcde", true, nil, false},
		{"interim answers skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
			201, "ok", true, nil, false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", 200, "x", false, nil, false},
		{"until EOF", "HTTP/1.1 200 OK\r\n\r\nall of it", 200, "all of it", false, nil, false},
		{"1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", false, nil, false},
		{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", 200, "x", true, nil, false},
		{"TE and CL: chunked wins, no reuse", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
			200, "z", false, nil, false},
		{"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, "", true, nil, false},
		{"fields as responseHeader has them", "HTTP/1.1 200 OK\r\nX-Multi: 1\r\nSet-Cookie: a=1, b\r\nConnection: X-Hop\r\nX-Hop: drop\r\n" +
			"Keep-Alive: timeout=5\r\nx-multi:  2 \r\nSet-Cookie: c=3\r\nContent-Encoding: GZIP\r\nContent-Length: 0\r\n\r\n",
			200, "", true, codec.Header{{Key: "set-cookie", Value: "a=1, b"}, {Key: "set-cookie", Value: "c=3"}, {Key: "x-multi", Value: "1, 2"}}, true},
		{"head longer than the read buffer", "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", true,
			codec.Header{{Key: "x-a", Value: strings.Repeat("a", 5000)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseResp(tc.raw, 1<<20)
			if err != nil {
				t.Fatalf("readResponse: %v", err)
			}
			if r.status != tc.status || string(r.body) != tc.body || r.keepAlive != tc.keep || r.gzip != tc.gzip {
				t.Errorf("got %d %q keep=%v gzip=%v, want %d %q keep=%v gzip=%v", r.status, r.body, r.keepAlive, r.gzip, tc.status, tc.body, tc.keep, tc.gzip)
			}
			if tc.body == "" && r.body != nil {
				t.Errorf("empty body is %q, want nil", r.body)
			}
			if !reflect.DeepEqual(r.header, tc.header) {
				t.Errorf("header %q, want %q", r.header, tc.header)
			}
		})
	}
}

func TestReadResponseRejects(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":              "",
		"garbage":            "NOT HTTP\r\n\r\n",
		"HTTP/2 status line": "HTTP/2.0 200 OK\r\n\r\n",
		"status not digits":  "HTTP/1.1 2x0 OK\r\n\r\n",
		"cut head":           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
		"cut body":           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"cut chunked":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		"bad chunk size":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"chunk without CRLF": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"negative length":    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"gzip coding":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"folded line":        "HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\n\r\n",
		"control byte":       "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
		"101 unasked":        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
		"chunked 1.0":        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"head too long":      "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", maxRespHeadBytes) + "\r\n\r\n",
		"bare LF lines":      "HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
		"bare LF in chunk":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n",
		"endless 1xx":        strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 10) + "HTTP/1.1 200 OK\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if r, err := parseResp(raw, 1<<20); err == nil {
				t.Errorf("accepted: %d %q", r.status, r.body)
			}
		})
	}
	for name, raw := range map[string]string{
		"length":  "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
		"EOF":     "HTTP/1.1 200 OK\r\n\r\nhello world",
	} {
		if _, err := parseResp(raw, 10); !errors.Is(err, errTooLarge) {
			t.Errorf("%s: 11 bytes over a limit of 10: %v", name, err)
		}
		if r, err := parseResp(raw, 11); err != nil || string(r.body) != "hello world" {
			t.Errorf("%s: 11 bytes at a limit of 11: %v", name, err)
		}
	}
}

// Two answers back to back on one connection: the first read stops exactly at its end.
func TestReadResponseKeepsTheNext(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n" +
		"HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\nb"))
	for _, want := range []string{"a", "b"} {
		r, err := readResponse(br, 100)
		if err != nil || string(r.body) != want {
			t.Fatalf("got %v %v, want body %q", r, err, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("bytes left over")
	}
}

// FuzzReadResponse holds the response decoder to net/http's: whatever readResponse
// accepts, net/http reads as the same status and body, and responseHeader (Forward's
// conversion) of net/http's fields equals what Call hands back.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: x-h\r\nX-H: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-M: 1\r\nx-m: 2\r\nConnection: x-m\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nto the end",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := parseResp(raw, 1<<16)
		if err != nil || spaceBeforeColon.MatchString(raw) {
			// A field name followed by whitespace: the codec drops the whitespace, as a
			// proxy must (RFC 9112 5.1; TestBackendFieldNameWhitespaceRemoved), where
			// net/http keeps it in the name: no reference.
			return
		}
		req, _ := http.NewRequest("POST", "http://x/", nil)
		br := bufio.NewReader(strings.NewReader(raw))
		var nr *http.Response
		for { // as http.Transport does: interim 1xx answers are skipped
			nr, err = http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("readResponse accepted what net/http refuses (%v): %q", err, raw)
			}
			if nr.StatusCode >= 200 || nr.StatusCode == 101 {
				break
			}
		}
		body, err := io.ReadAll(nr.Body)
		if err != nil {
			t.Fatalf("readResponse accepted a body net/http cannot read (%v): %q", err, raw)
		}
		if nr.StatusCode != r.status || !bytes.Equal(body, r.body) {
			t.Fatalf("net/http: %d %q; readResponse: %d %q; input %q", nr.StatusCode, body, r.status, r.body, raw)
		}
		want, gzip := responseHeader(nr.Header)
		if len(want) == 0 {
			want = nil
		}
		if gzip != r.gzip || !reflect.DeepEqual(want, r.header) {
			t.Fatalf("header: Forward's conversion %q gzip=%v, Call's %q gzip=%v; input %q", want, gzip, r.header, r.gzip, raw)
		}
	})
}

var spaceBeforeColon = regexp.MustCompile(`(?m)^[^:\r\n]*[ \t]:`)

// responseHeader is the reference codecHeader is held to (FuzzReadResponse): the
// conversion Call made when it ran on net/http's Transport. It turns a backend's header into the codec's form: names lowercased,
// hop-by-hop fields and Content-Length dropped (the codec frames the body itself), and a
// Content-Encoding of exactly gzip turned into the Gzip flag. Repeated fields are joined
// with ", " (MMTP allows a key once), except Set-Cookie, whose values may hold commas and
// so stay separate entries. Keys come out sorted, so output is deterministic.
func responseHeader(h http.Header) (codec.Header, bool) {
	var toks []string
	for _, v := range h["Connection"] {
		http1.ConnectionTokens(v, func(name string) { toks = append(toks, name) })
	}
	keys := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	out := make(codec.Header, 0, n)
	gzip := false
	for _, k := range keys {
		vs := h[k]
		if len(vs) == 0 || http1.IsHopByHop(k) || http1.IsConnectionToken(toks, strings.ToLower(k)) {
			continue
		}
		lk := strings.ToLower(k)
		switch lk {
		case "content-length":
			continue
		case "content-encoding":
			if len(vs) == 1 && strings.EqualFold(strings.TrimSpace(vs[0]), "gzip") {
				gzip = true
				continue
			}
		case "set-cookie":
			for _, v := range vs {
				out = append(out, codec.Field{Key: lk, Value: v})
			}
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ", ")
		}
		out = append(out, codec.Field{Key: lk, Value: v})
	}
	return out, gzip
}
