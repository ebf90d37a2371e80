package http1

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
)

func TestAppendResponseHead(t *testing.T) {
	hdr := codec.Header{
		{Key: "content-type", Value: "application/json"},
		{Key: "etag", Value: `"x"`},
		{Key: "x-request-id", Value: "42"},
		{Key: "connection", Value: "keep-alive"},       // ours, not the backend's
		{Key: "transfer-encoding", Value: "chunked"},   // framing is ours
		{Key: "content-length", Value: "999"},          // framing is ours
		{Key: "x-evil", Value: "a\r\nSet-Cookie: x=1"}, // would split the response
		{Key: "bad name", Value: "v"},
	}
	tests := []struct {
		name      string
		minor     int
		status    int
		cl        int64
		keepAlive bool
		want      string
		reusable  bool
	}{
		{"1.1 length", 1, 200, 2, true,
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nContent-Length: 2\r\n\r\n", true},
		{"1.1 chunked close", 1, 404, -1, false,
			"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", false},
		{"1.0 keep-alive", 0, 200, 0, true,
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", true},
		{"1.0 close-delimited", 0, 200, -1, true,
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nConnection: close\r\n\r\n", false},
		{"204 no framing", 1, 204, -1, true,
			"HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\n\r\n", true},
		{"status out of range", 1, 42, 0, true,
			"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nContent-Length: 0\r\n\r\n", true},
		{"unknown status", 1, 599, 0, true,
			"HTTP/1.1 599 \r\nContent-Type: application/json\r\nETag: \"x\"\r\nX-Request-Id: 42\r\nContent-Length: 0\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendResponseHead([]byte("prefix"), tt.minor, tt.status, hdr, tt.cl, tt.keepAlive))
			got = checkDate(t, got)
			if got != "prefix"+tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, "prefix"+tt.want)
			}
			if r := ResponseKeepAlive(tt.minor, tt.status, tt.cl, tt.keepAlive); r != tt.reusable {
				t.Errorf("ResponseKeepAlive = %v, want %v", r, tt.reusable)
			}
		})
	}
}

// TestResponseReadByNetHTTP checks our responses against the standard library's client
// side parser, chunked and whole, keep-alive and not.
func TestResponseReadByNetHTTP(t *testing.T) {
	var b []byte
	b = AppendResponse(b, 1, &codec.Response{Status: 200, Header: codec.Header{{Key: "x-a", Value: "1"}}, Body: []byte("hello"), Gzip: true}, true)
	b = AppendResponseHead(b, 1, 502, codec.Header{{Key: "content-type", Value: "text/plain"}}, -1, true)
	b = AppendChunk(b, []byte("bad "))
	b = AppendChunk(b, nil)
	b = AppendChunk(b, []byte("gateway, a longer chunk to get two hex digits in the size"))
	b = AppendLastChunk(b)
	b = AppendResponse(b, 1, &codec.Response{Status: 304, Body: []byte("dropped")}, false)

	br := bufio.NewReader(strings.NewReader(string(b)))
	want := []struct {
		status int
		body   string
		hdr    string
		close  bool
	}{
		{200, "hello", "gzip", false},
		{502, "bad gateway, a longer chunk to get two hex digits in the size", "", false},
		{304, "", "", true},
	}
	for i, w := range want {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		if resp.StatusCode != w.status || string(body) != w.body || resp.Header.Get("Content-Encoding") != w.hdr || resp.Close != w.close {
			t.Errorf("response %d = %d %q ce %q close %v; want %+v", i, resp.StatusCode, body, resp.Header.Get("Content-Encoding"), resp.Close, w)
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("left over: %q", rest)
	}
}

func TestAppend100Continue(t *testing.T) {
	if got := string(Append100Continue(nil)); got != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Errorf("got %q", got)
	}
}

func TestAppendCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"content-type": "Content-Type", "x-b3-traceid": "X-B3-Traceid", "etag": "ETag",
		"www-authenticate": "WWW-Authenticate", "ALREADY-UP": "Already-Up", "a--b": "A--B", "x_y": "X_y",
	} {
		if got := string(appendCanonical(nil, in)); got != want {
			t.Errorf("appendCanonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusText(t *testing.T) {
	if StatusText(413) != "Content Too Large" || StatusText(200) != "OK" || StatusText(799) != "" {
		t.Error("unexpected status text")
	}
	for _, c := range []int{100, 200, 204, 301, 400, 404, 413, 431, 500, 501, 502, 503, 504, 505} {
		if StatusText(c) == "" {
			t.Errorf("StatusText(%d) empty", c)
		}
	}
}

// The answer to HEAD is AppendResponse's head without the body, Content-Length included.
func TestAppendResponseHeadOnly(t *testing.T) {
	for _, r := range []*codec.Response{
		{Status: 404, Header: codec.Header{{Key: "content-type", Value: "application/json"}}, Body: []byte(`{"error":"x"}`)},
		{Status: 200, Body: []byte("zipped"), Gzip: true},
	} {
		whole := string(AppendResponse(nil, 1, r, true))
		got := string(AppendResponseHeadOnly(nil, 1, r, true))
		if want := strings.TrimSuffix(whole, string(r.Body)); got != want || got == whole {
			t.Errorf("head only\n%q\nwant\n%q", got, want)
		}
		if !strings.Contains(got, "Content-Length: "+strconv.Itoa(len(r.Body))+"\r\n") {
			t.Errorf("head only %q lost the Content-Length %d", got, len(r.Body))
		}
	}
}

var dateLine = regexp.MustCompile("\r\nDate: ([^\r]*)\r\n")

// checkDate fails unless head has one Date field holding an IMF-fixdate within a minute
// of now, and returns head without it.
func checkDate(t *testing.T, head string) string {
	t.Helper()
	m := dateLine.FindAllStringSubmatchIndex(head, -1)
	if len(m) != 1 {
		t.Fatalf("%d Date fields in %q, want 1", len(m), head)
	}
	v := head[m[0][2]:m[0][3]]
	d, err := time.Parse(http.TimeFormat, v)
	if err != nil {
		t.Fatalf("Date %q is not an IMF-fixdate: %v", v, err)
	}
	if since := time.Since(d); since < -time.Minute || since > time.Minute {
		t.Fatalf("Date %q is %s from now", v, since)
	}
	return head[:m[0][0]] + "\r\n" + head[m[0][1]:]
}

// Every final response the gateway frames carries a Date (RFC 9110 6.6.1); a Date the
// backend sent is kept, not doubled; an interim response needs none.
func TestResponseDate(t *testing.T) {
	checkDate(t, string(AppendResponse(nil, 1, codec.ErrorResponse(404, codec.ErrNoRoute, "no route"), true)))
	checkDate(t, string(AppendResponseHeadOnly(nil, 0, &codec.Response{Status: 503}, false)))
	checkDate(t, string(AppendResponseHead(nil, 1, 200, nil, -1, true)))
	kept := "Sun, 06 Nov 1994 08:49:37 GMT"
	got := string(AppendResponseHead(nil, 1, 200, codec.Header{{Key: "date", Value: kept}}, 0, true))
	if strings.Count(got, "Date: ") != 1 || !strings.Contains(got, "\r\nDate: "+kept+"\r\n") {
		t.Errorf("backend's Date not kept alone: %q", got)
	}
	if got := string(AppendResponseHead(nil, 1, 103, nil, -1, true)); strings.Contains(got, "Date") {
		t.Errorf("1xx got a Date: %q", got)
	}
}
