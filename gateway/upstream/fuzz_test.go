package upstream

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// FuzzCopyHeader checks the one decoding step of this package that takes client bytes:
// turning a codec header (MMTP values are arbitrary bytes) into HTTP fields. Whatever the
// input, either copyHeader refuses it or the request it builds, once written and parsed
// back, carries exactly the fields that were copied: no field injection, no hop-by-hop or
// stripped field leaking through.
func FuzzCopyHeader(f *testing.F) {
	f.Add("x-a", "1", "sign", "s")
	f.Add("connection", "x-b", "x-b", "hidden")
	f.Add("x-evil", "a\r\nInjected: 1", "nonce", "n")
	f.Add("x_under.dot", "v\tw", "te", "trailers")
	f.Add("", "empty", "k", "\x00")
	f.Add("x-a", "é ünïcode", "Host", "h")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := codec.Header{{Key: k1, Value: v1}, {Key: k2, Value: v2}}
		out := make(http.Header)
		if err := copyHeader(out, in, func(k string) bool { return skipAPIHeader(k, false) }); err != nil {
			return
		}
		for k := range out {
			lk := strings.ToLower(k)
			if lk == "sign" || lk == "nonce" || lk == "host" || lk == "connection" || lk == "te" {
				t.Fatalf("stripped field %q copied", k)
			}
		}
		req, err := http.NewRequest("POST", "http://127.0.0.1/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = out
		var buf bytes.Buffer
		if err := req.Write(&buf); err != nil {
			t.Fatalf("net/http refused a header copyHeader accepted: %v (%q)", err, in)
		}
		back, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("written request does not parse: %v\n%q", err, buf.String())
		}
		for k, vs := range out {
			got := back.Header[k]
			if len(got) != len(vs) {
				t.Fatalf("field %q: sent %q, parsed %q", k, vs, got)
			}
			for i := range vs {
				// Parsing trims surrounding whitespace, as HTTP defines.
				if got[i] != strings.Trim(vs[i], " \t") {
					t.Fatalf("field %q: sent %q, parsed %q", k, vs[i], got[i])
				}
			}
		}
		for k := range back.Header {
			if _, ok := out[k]; !ok && k != "User-Agent" && k != "Content-Length" {
				t.Fatalf("field %q appeared from nowhere (injection) in %q", k, buf.String())
			}
		}
	})
}
