package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// FuzzCallHead checks the one encoder of this package that takes client bytes: the
// request head Call writes from a codec header (MMTP values are arbitrary bytes). Either
// it refuses the input, or the bytes parse back with net/http as a single request with
// exactly the expected fields: no injection, no stripped field leaking through.
func FuzzCallHead(f *testing.F) {
	f.Add("a.b", "x-a", "1", "sign", "s", false, true)
	f.Add("op", "connection", "x-b", "x-b", "hidden", true, false)
	f.Add("op", "x-evil", "a\r\nInjected: 1", "nonce", "n", false, false)
	f.Add("op/with space?", "x_under.dot", "v\tw", "te", "trailers", false, true)
	f.Add("op", "", "empty", "k", "\x00", false, false)
	f.Add("op", "x-forwarded-for", "1.2.3.4", "X-Forwarded-For", "5.6.7.8", false, true)
	f.Add("op\r\nX: y", "Host", "h", "content-length", "99", true, true)
	f.Add("op", "via", "1.1 a", "Via", "2 b", false, true)
	f.Add("op", "via", "1.1 a", "connection", "via", false, false)
	f.Fuzz(func(t *testing.T, op, k1, v1, k2, v2 string, gzip, httpProto bool) {
		req := &codec.Request{Protocol: codec.MMTP, Operation: op, Gzip: gzip, Body: []byte("body"), Minor: 1,
			Header: codec.Header{{Key: k1, Value: v1}, {Key: k2, Value: v2}}, Conn: codec.ConnInfo{ClientAddr: client}}
		if httpProto {
			req.Protocol = codec.HTTP1
		}
		head, err := appendCallHead(nil, "/gw", req)
		if err != nil {
			return
		}
		head = appendHostAndEnd(head, "10.0.0.1:80")
		raw := append(head, req.Body...)
		br := bufio.NewReader(bytes.NewReader(raw))
		back, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("head does not parse: %v\n%q", err, raw)
		}
		body, err := io.ReadAll(back.Body)
		if err != nil || string(body) != "body" || br.Buffered() != 0 {
			t.Fatalf("body %q (%v), %d bytes left over\n%q", body, err, br.Buffered(), raw)
		}
		if back.Method != "POST" || back.Host != "10.0.0.1:80" || back.Header.Get("Operation-Type") != strings.Trim(op, " \t") ||
			back.URL.Path != "/gw/"+op {
			t.Fatalf("request %s %s host %s op %q\n%q", back.Method, back.URL.Path, back.Host, back.Header.Get("Operation-Type"), raw)
		}
		if got := back.Header.Get("Content-Encoding") == "gzip"; gzip && !got {
			t.Fatalf("gzip flag not sent\n%q", raw)
		}
		// Every field that arrived was expected: one of the two copied, or one Call adds.
		toks := connectionTokens(req.Header)
		expected := map[string]bool{"Operation-Type": true, "Content-Length": true, "X-Forwarded-For": true}
		if httpProto {
			expected["Via"] = true
		}
		if gzip {
			expected["Content-Encoding"] = true
		}
		for _, fld := range req.Header {
			lk := strings.ToLower(fld.Key)
			if !http1.IsConnectionToken(toks, lk) && !skipAPIHeader(lk, gzip) && lk != "connection" && lk != "te" &&
				lk != "keep-alive" && lk != "upgrade" && lk != "trailer" && lk != "transfer-encoding" &&
				lk != "proxy-connection" && lk != "proxy-authenticate" && lk != "proxy-authorization" {
				expected[textproto.CanonicalMIMEHeaderKey(fld.Key)] = true
			}
		}
		for k := range back.Header {
			if !expected[k] {
				t.Fatalf("field %q appeared (injected or not stripped)\n%q", k, raw)
			}
		}
		xff := back.Header.Values("X-Forwarded-For")
		if len(xff) != 1 || !strings.HasSuffix(xff[0], "192.0.2.7") {
			t.Fatalf("X-Forwarded-For %q, want one field ending in the client address\n%q", xff, raw)
		}
		// Our Via entry on calls forwarded from HTTP only; a client's Via values kept.
		via := back.Header.Values("Via")
		if httpProto && (len(via) != 1 || !strings.HasSuffix(via[0], viaEntry(1))) || !httpProto && strings.Contains(strings.Join(via, ","), viaEntry(1)) {
			t.Fatalf("Via %q (from HTTP: %v)\n%q", via, httpProto, raw)
		}
	})
}

// An HTTP-to-HTTP gateway adds its Via entry after the client's (RFC 9110 7.6.3), in one
// field, naming the version it received (1.0 for an HTTP/1.0 client); an API call that came
// in over MMTP passes the client's Via as sent.
func TestVia(t *testing.T) {
	tests := []struct {
		name   string
		hdr    codec.Header
		http10 bool
		want   string // the Via line, or "" for none
	}{
		{"none", nil, false, "Via: 1.1 mgw\r\n"},
		{"from HTTP/1.0", codec.Header{{Key: "via", Value: "1.1 a"}}, true, "Via: 1.1 a, 1.0 mgw\r\n"},
		{"client's", codec.Header{{Key: "via", Value: "1.0 fred, 1.1 p.example"}}, false, "Via: 1.0 fred, 1.1 p.example, 1.1 mgw\r\n"},
		{"two fields and an empty one", codec.Header{{Key: "Via", Value: "1.0 a"}, {Key: "via", Value: ""}, {Key: "VIA", Value: "1.1 b"}},
			false, "Via: 1.0 a, 1.1 b, 1.1 mgw\r\n"},
		{"named by Connection", codec.Header{{Key: "connection", Value: "via"}, {Key: "via", Value: "1.0 a"}}, false, "Via: 1.1 mgw\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, err := appendForwardHead(nil, &ProxyRequest{Method: "GET", Target: "/", Header: tt.hdr, HTTP10: tt.http10}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(head); strings.Count(got, "Via:") != 1 || !strings.Contains(got, "\r\n"+tt.want) {
				t.Errorf("forwarded head %q, want the line %q", got, tt.want)
			}
			for _, proto := range []codec.Protocol{codec.HTTP1, codec.MMTP} {
				minor := 1
				if tt.http10 {
					minor = 0
				}
				head, err := appendCallHead(nil, "", &codec.Request{Protocol: proto, Operation: "a.b", Header: tt.hdr, Minor: minor})
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				if proto == codec.MMTP {
					want = strings.NewReplacer(", 1.1 mgw", "", ", 1.0 mgw", "", "Via: 1.1 mgw\r\n", "").Replace(want)
				}
				got := string(head)
				if want == "" && strings.Contains(got, "Via") || want != "" && (strings.Count(got, "Via:") != 1 || !strings.Contains(got, "\r\n"+want)) {
					t.Errorf("%s call head %q, want the Via line %q", proto, got, want)
				}
			}
		})
	}
}
