package http1

import (
	"bytes"
	"fmt"
	"testing"
)

// fuzzSeeds are also in testdata/fuzz/FuzzParse; these keep the target useful when run
// without the corpus directory.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /api/user.get HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.0\r\n\r\n\r\nPOST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
	"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
	"GET http://h:80/p?q HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2, 2\r\n\r\nab",
	"GET https://h/ HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS http://h HTTP/1.1\r\nHost: y\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ; n = \"a;b\\\"c\"\r\nhello\r\n0;x\r\n\r\n",
}

// FuzzParse feeds arbitrary bytes through ParseHead and BodyDecoder as the reactor
// would, and checks three things: parsing the bytes whole and in small reads gives the
// same requests and the same accept/reject decision; every accepted request satisfies the
// parser's output invariants; and net/http agrees on what both accept (differential).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	lim := &Limits{MaxHeadBytes: 512, MaxHeaders: 16, MaxBodyBytes: 1024}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		wholeReqs, wholeRest, wholeErr := parseStream(in, lim, whole)
		step := 1
		if len(in) > 0 {
			step += int(in[len(in)-1] % 13)
		}
		splitReqs, splitRest, splitErr := parseStream(in, lim, func(int) int { return step })
		if (wholeErr == nil) != (splitErr == nil) {
			t.Fatalf("whole: %v; in reads of %d: %v", wholeErr, step, splitErr)
		}
		if d := sameRequests(wholeReqs, splitReqs); d != "" {
			t.Fatalf("whole vs reads of %d: %s", step, d)
		}
		if wholeErr == nil && !bytes.Equal(wholeRest, splitRest) {
			t.Fatalf("rest: whole %q, reads of %d %q", wholeRest, step, splitRest)
		}
		for _, err := range []error{wholeErr, splitErr} {
			if err != nil {
				e := AsError(err)
				if e == nil || e.Reason == "" || StatusText(e.Status) == "" {
					t.Fatalf("bad error %#v", err)
				}
			}
		}
		for i, r := range wholeReqs {
			if d := checkInvariants(&r, lim); d != "" {
				t.Fatalf("request %d: %s", i, d)
			}
		}
		if d := differential(in); d != "" {
			t.Fatalf("differential: %s", d)
		}
		// Misuse must not panic or over-consume: progress from one buffer, then another
		// without Reset.
		if len(in) > 1 {
			cut := int(in[0]) % len(in)
			var h RequestHead
			ParseHead(in[:cut], lim, &h)
			if n, err := ParseHead(in[cut:], lim, &h); n < 0 || n > len(in)-cut || (err != nil && AsError(err) == nil) {
				t.Fatalf("stale state: n %d of %d, err %v", n, len(in)-cut, err)
			}
		}
	})
}

func sameRequests(a, b []parsed) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d requests vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := &a[i].head, &b[i].head
		if x.Method != y.Method || x.Target != y.Target || x.Minor != y.Minor || x.Host != y.Host ||
			x.ContentLength != y.ContentLength || x.Chunked != y.Chunked || x.KeepAlive != y.KeepAlive ||
			x.ExpectContinue != y.ExpectContinue || len(x.Header) != len(y.Header) || a[i].off != b[i].off {
			return fmt.Sprintf("request %d heads differ: %+v vs %+v", i, *x, *y)
		}
		for j := range x.Header {
			if x.Header[j] != y.Header[j] {
				return fmt.Sprintf("request %d field %d: %q vs %q", i, j, x.Header[j], y.Header[j])
			}
		}
		if !bytes.Equal(a[i].body, b[i].body) {
			return fmt.Sprintf("request %d body %q vs %q", i, a[i].body, b[i].body)
		}
	}
	return ""
}

// checkInvariants states what every accepted request guarantees to the gateway.
func checkInvariants(r *parsed, lim *Limits) string {
	h := &r.head
	if h.Method == "" || !allTchar(h.Method) {
		return fmt.Sprintf("method %q", h.Method)
	}
	if h.Target == "" {
		return "empty target"
	}
	for i := 0; i < len(h.Target); i++ {
		if !isTargetByte[h.Target[i]] {
			return fmt.Sprintf("target %q", h.Target)
		}
	}
	if h.Minor != 0 && h.Minor != 1 {
		return fmt.Sprintf("minor %d", h.Minor)
	}
	if len(h.Header) > lim.headers() {
		return fmt.Sprintf("%d fields", len(h.Header))
	}
	hosts := 0
	for _, f := range h.Header {
		if f.Key == "" || !allTchar(f.Key) {
			return fmt.Sprintf("key %q", f.Key)
		}
		for i := 0; i < len(f.Key); i++ {
			if 'A' <= f.Key[i] && f.Key[i] <= 'Z' {
				return fmt.Sprintf("key %q not lowercase", f.Key)
			}
		}
		v := f.Value
		if trimOWSString(v) != v {
			return fmt.Sprintf("value %q not trimmed", v)
		}
		for i := 0; i < len(v); i++ {
			if !isValueByte[v[i]] {
				return fmt.Sprintf("value %q has a control byte", v)
			}
		}
		if f.Key == "host" {
			hosts++
		}
	}
	if hosts > 1 || h.Minor == 1 && hosts == 0 {
		return fmt.Sprintf("%d Host fields", hosts)
	}
	if h.Chunked && h.ContentLength != -1 {
		return "chunked with a Content-Length"
	}
	if !h.Chunked && int64(len(r.body)) != max(h.ContentLength, 0) {
		return fmt.Sprintf("body %d bytes, Content-Length %d", len(r.body), h.ContentLength)
	}
	if int64(len(r.body)) > lim.bodyBytes() {
		return fmt.Sprintf("body %d bytes over the limit", len(r.body))
	}
	return ""
}

func allTchar(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTchar[s[i]] {
			return false
		}
	}
	return true
}
