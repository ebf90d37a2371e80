package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// FuzzForwardHead checks the request head Forward writes from a client's request (its
// method, target and fields): either Forward's checks refuse the input, or the bytes
// parse back with net/http as one request with exactly the expected fields and target:
// no injection, no hop-by-hop or stripped field leaking through.
func FuzzForwardHead(f *testing.F) {
	f.Add("GET", "/a?b=1", "x-a", "1", "host", "h")
	f.Add("POST", "/p", "connection", "x-b", "x-b", "hidden")
	f.Add("GET", "/", "x-evil", "a\r\nInjected: 1", "expect", "100-continue")
	f.Add("PUT", "/a%2Fb//c?x=1&y=%20", "x_under.dot", "v\tw", "te", "trailers")
	f.Add("GET", "/ HTTP/1.1\r\nX: y", "", "empty", "k", "\x00")
	f.Add("DELETE", "/x", "X-Forwarded-For", "1.1.1.1", "content-length", "7")
	f.Add("GET", "/v", "via", "1.0 fred, 1.1 p.example", "Via", " ")
	f.Add("OPTIONS", "/%", "max-forwards", "3", "Max-Forwards", "x")
	f.Fuzz(func(t *testing.T, method, target, k1, v1, k2, v2 string) {
		r := &ProxyRequest{Method: method, Target: target, Host: "h.example",
			Header: codec.Header{{Key: k1, Value: v1}, {Key: k2, Value: v2}}, ClientAddr: client}
		if (&Cluster{}).checkForward(r) != nil {
			return // Forward refuses these before writing anything
		}
		head, err := appendForwardHead(nil, r, 0)
		if err != nil {
			return
		}
		head = appendHostAndEnd(head, r.Host)
		br := bufio.NewReader(bytes.NewReader(head))
		back, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("head does not parse: %v\n%q", err, head)
		}
		if b, _ := io.ReadAll(back.Body); len(b) != 0 || br.Buffered() != 0 {
			t.Fatalf("bytes after the head\n%q", head)
		}
		if back.Method != method || back.RequestURI != target || back.Host != "h.example" {
			t.Fatalf("request %s %s host %s\n%q", back.Method, back.RequestURI, back.Host, head)
		}
		toks := connectionTokens(r.Header)
		expected := map[string]bool{"X-Forwarded-For": true, "Content-Length": true, "Via": true}
		for _, fld := range r.Header {
			lk := strings.ToLower(fld.Key)
			if !http1.IsConnectionToken(toks, lk) && !skipProxyHeader(lk) && lk != "connection" && lk != "te" &&
				lk != "keep-alive" && lk != "upgrade" && lk != "trailer" && lk != "transfer-encoding" &&
				lk != "proxy-connection" && lk != "proxy-authenticate" && lk != "proxy-authorization" {
				expected[textproto.CanonicalMIMEHeaderKey(fld.Key)] = true
			}
		}
		for k := range back.Header {
			if !expected[k] {
				t.Fatalf("field %q appeared (injected or not stripped)\n%q", k, head)
			}
		}
		if xff := back.Header.Values("X-Forwarded-For"); len(xff) != 1 || !strings.HasSuffix(xff[0], "192.0.2.7") {
			t.Fatalf("X-Forwarded-For %q\n%q", xff, head)
		}
		if via := back.Header.Values("Via"); len(via) != 1 || !strings.HasSuffix(via[0], ", "+viaEntry(1)) && via[0] != viaEntry(1) {
			t.Fatalf("Via %q, want one field ending in %q\n%q", via, viaEntry(1), head)
		}
	})
}

// FuzzCheckTarget: checkTarget refuses an origin-form target exactly when
// url.ParseRequestURI does or it holds a byte the request line cannot carry.
func FuzzCheckTarget(f *testing.F) {
	for _, s := range []string{"/", "/a%2Fb?x=%zz", "/%", "/%4", "/%4g", "/a b", "/a\x7f", "/p?q#f", "//x/y", "/%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if len(target) == 0 || target[0] != '/' {
			return
		}
		_, perr := url.ParseRequestURI(target)
		ctl := strings.ContainsFunc(target, func(r rune) bool { return r <= ' ' || r == 0x7f })
		want := perr == nil && !ctl
		if got := checkTarget(target) == nil; got != want {
			t.Fatalf("checkTarget(%q) accepts: %v; url.ParseRequestURI: %v, control bytes: %v", target, got, perr, ctl)
		}
	})
}
