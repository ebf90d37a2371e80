package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// readResp reads one response as a backend connection would: head, then body.
func readResp(br *bufio.Reader, method string) (*ResponseHead, []byte, bool, error) {
	var h ResponseHead
	if err := ReadResponseHead(br, nil, &h); err != nil {
		return nil, nil, false, err
	}
	var d BodyDecoder
	d.ResetResponse(&h, method, 1<<20, nil)
	untilClose := d.UntilClose()
	body, err := io.ReadAll(NewBodyReader(br, &d))
	return &h, body, untilClose, err
}

func TestParseResponseHead(t *testing.T) {
	for _, tc := range []struct {
		name, raw, method string
		status            int
		body              string
		keep, untilClose  bool
		cl                int64
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "GET", 200, "hello", true, false, 5},
		{"no reason", "HTTP/1.1 204\r\n\r\n", "GET", 204, "", true, false, -1},
		{"empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "GET", 200, "", true, false, 0},
		{"chunked, extension, trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n", "GET", 200, "abcde", true, false, -1},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nall of it", "GET", 200, "all of it", true, true, -1},
		{"HEAD has no body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", 200, "", true, false, 10},
		{"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", 304, "", true, false, 10},
		{"1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", false, false, 1},
		{"1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", true, false, 1},
		{"close", "HTTP/1.1 200 OK\r\nConnection: x-a, close\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", false, false, 1},
		{"TE and CL", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n", "GET", 200, "z", false, false, -1},
		{"1.2 read as 1.1", "HTTP/1.2 200 OK\r\nContent-Length: 1\r\n\r\nx", "GET", 200, "x", true, false, 1},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx", "GET", 200, "x", true, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{16, 4096} { // a small buffer makes the head spill out of it
				h, body, uc, err := readResp(bufio.NewReaderSize(strings.NewReader(tc.raw), size), tc.method)
				if err != nil {
					t.Fatalf("buffer %d: %v", size, err)
				}
				if h.Status != tc.status || string(body) != tc.body || h.KeepAlive != tc.keep || uc != tc.untilClose || h.ContentLength != tc.cl {
					t.Errorf("buffer %d: got %d %q keep=%v untilClose=%v cl=%d", size, h.Status, body, h.KeepAlive, uc, h.ContentLength)
				}
			}
		})
	}
}

func TestParseResponseHeadRejects(t *testing.T) {
	for name, raw := range map[string]string{
		"not HTTP":            "SSH-2.0-OpenSSH\r\n",
		"HTTP/2":              "HTTP/2.0 200 OK\r\n\r\n",
		"status not digits":   "HTTP/1.1 2x0 OK\r\n\r\n",
		"status under 100":    "HTTP/1.1 099 Low\r\n\r\n",
		"no space after code": "HTTP/1.1 200OK\r\n\r\n",
		"bare LF":             "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"control in reason":   "HTTP/1.1 200 O\x01K\r\n\r\n",
		"two lengths":         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"signed length":       "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
		"gzip coding":         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"chunked twice":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"chunked in 1.0":      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"folding":             "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n",
		"NUL in value":        "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
		"too long":            "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", DefaultMaxHeadBytes) + "\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			var h ResponseHead
			n, err := ParseResponseHead([]byte(raw), nil, &h)
			if err == nil {
				t.Fatalf("accepted (n=%d): %+v", n, h)
			}
			if e := AsError(err); e == nil || e.Status != 502 || e.Reason == "" {
				t.Errorf("error %v is not a 502 *Error", err)
			}
		})
	}
}

// A backend that is not speaking HTTP is refused before its head limit fills up.
func TestParseResponseHeadRefusesEarly(t *testing.T) {
	var h ResponseHead
	if n, err := ParseResponseHead([]byte("\x16\x03\x01\x02\x00"), nil, &h); err == nil {
		t.Fatalf("TLS bytes: n=%d, no error", n)
	}
	if n, err := ParseResponseHead([]byte("HTTP/1.1 200 OK\r\nContent-"), nil, &h); n != 0 || err != nil {
		t.Fatalf("incomplete head: n=%d err=%v", n, err)
	}
}

func TestResponseBodyErrors(t *testing.T) {
	for name, raw := range map[string]string{
		"cut length":       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"cut chunked":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		"bad chunk size":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"chunk over size":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
		"bare LF in chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n",
	} {
		if _, body, _, err := readResp(bufio.NewReader(strings.NewReader(raw)), "GET"); err == nil {
			t.Errorf("%s: accepted body %q", name, body)
		}
	}
	var h ResponseHead
	if _, err := ParseResponseHead([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), nil, &h); err != nil {
		t.Fatal(err)
	}
	var d BodyDecoder
	d.ResetResponse(&h, "GET", 4, nil)
	_, err := io.ReadAll(NewBodyReader(bufio.NewReader(strings.NewReader("5\r\nhello\r\n0\r\n\r\n")), &d))
	if e := AsError(err); e == nil || e.Status != 413 {
		t.Errorf("5 bytes over a limit of 4: %v", err)
	}
}

// Two answers on one connection: each read stops exactly at its end.
func TestResponsesBackToBack(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"+
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\nb"), 16)
	for _, want := range []string{"a", "", "b"} {
		_, body, _, err := readResp(br, "POST")
		if err != nil || string(body) != want {
			t.Fatalf("got %q %v, want %q", body, err, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("bytes left over")
	}
}

// FuzzResponse holds the response decoder to net/http's: whatever it accepts, net/http
// reads as the same status and body, and the decoder stops where net/http does, whatever
// the buffer size.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 304 Not Modified\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nto the end",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length \t: 1\r\n\r\nx",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, raw string, size uint8) {
		h, body, _, err := readResp(bufio.NewReaderSize(strings.NewReader(raw), 16+int(size)), "GET")
		if err != nil || h.Status < 200 || h.Status == 304 {
			return // 1xx: the caller's loop; 304: net/http's rules for it differ in detail
		}
		req, _ := http.NewRequest("GET", "http://x/", nil)
		nr, err := http.ReadResponse(bufio.NewReader(strings.NewReader(trimNameWSInHead(raw))), req)
		if err != nil {
			t.Fatalf("accepted what net/http refuses (%v): %q", err, raw)
		}
		nbody, err := io.ReadAll(nr.Body)
		if err != nil {
			t.Fatalf("accepted a body net/http cannot read (%v): %q", err, raw)
		}
		if nr.StatusCode != h.Status || !bytes.Equal(nbody, body) {
			t.Fatalf("net/http: %d %q; ours: %d %q; input %q", nr.StatusCode, nbody, h.Status, body, raw)
		}
	})
}

var nameWS = regexp.MustCompile("(?m)^([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]+:")

// trimNameWSInHead removes whitespace before the colons of raw's head, which we do (RFC
// 9112 5.1) and net/http does only for spaces, not tabs: the differential compares the
// rest.
func trimNameWSInHead(raw string) string {
	head, rest, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		return raw
	}
	return nameWS.ReplaceAllString(head, "$1:") + "\r\n\r\n" + rest
}

// Whitespace between a response field's name and its colon is removed, as RFC 9112 5.1
// has a proxy do, and the field read as any other; in a request it stays a 400.
func TestResponseFieldNameWhitespace(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nX-A : a\r\nX-B\t \t: b\r\nContent-Length\t: 2\r\n\r\nok"
	h, body, _, err := readResp(bufio.NewReader(strings.NewReader(raw)), "GET")
	if err != nil {
		t.Fatal(err)
	}
	want := codec.Header{{Key: "x-a", Value: "a"}, {Key: "x-b", Value: "b"}, {Key: "content-length", Value: "2"}}
	if !reflect.DeepEqual(h.Header, want) || h.ContentLength != 2 || string(body) != "ok" {
		t.Errorf("got %q length %d body %q; want %q length 2 body ok", h.Header, h.ContentLength, body, want)
	}
	var rh RequestHead
	if _, err := ParseHead([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-A : a\r\n\r\n"), nil, &rh); err == nil || AsError(err).Status != 400 {
		t.Errorf("request with whitespace before a colon: %v, want a 400", err)
	}
}
