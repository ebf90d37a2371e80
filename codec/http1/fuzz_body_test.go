package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"testing"
)

// decodeChunked runs a chunked body through a BodyDecoder in reads of step bytes (0:
// whole), the way the reactor presents it.
func decodeChunked(in []byte, lim *Limits, step int) (body []byte, used int, done bool, err error) {
	var d BodyDecoder
	d.Reset(&RequestHead{ContentLength: -1, Chunked: true}, lim)
	var pending []byte
	for fed := 0; ; {
		k := len(in) - fed
		if step > 0 && k > step {
			k = step
		}
		pending = append(pending, in[fed:fed+k]...)
		fed += k
		for {
			data, n, dn, derr := d.Decode(pending)
			if derr != nil {
				return body, used, false, derr
			}
			body = append(body, data...)
			pending, used = pending[n:], used+n
			if dn {
				return body, used, true, nil
			}
			if data == nil {
				break
			}
		}
		if fed == len(in) {
			return body, used, false, nil
		}
	}
}

// FuzzBody checks the chunked decoder on its own: reads of any size give the same result
// as one read, and where net/http's chunked reader (httputil.NewChunkedReader) also
// accepts the body, both decode the same bytes.
func FuzzBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;a=b\r\nabc\r\nA;x\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
		"0\r\n\r\nGET / HTTP/1.1\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"5\nhello\n0\n\n",
		"-1\r\n",
		"fffffffffffffffffff\r\n",
		"2\r\nhi\r\n0\r\nX : y\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(1))
	}
	lim := &Limits{MaxHeadBytes: 256, MaxHeaders: 8, MaxBodyBytes: 4096}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		body, used, done, err := decodeChunked(in, lim, 0)
		sbody, sused, sdone, serr := decodeChunked(in, lim, int(step%16)+1)
		if (err == nil) != (serr == nil) || done != sdone || !bytes.Equal(body, sbody) || (err == nil && used != sused) {
			t.Fatalf("whole: %q %d %v %v; reads of %d: %q %d %v %v", body, used, done, err, step%16+1, sbody, sused, sdone, serr)
		}
		if err != nil && AsError(err) == nil {
			t.Fatalf("non-*Error: %v", err)
		}
		if used > len(in) || int64(len(body)) > lim.bodyBytes() {
			t.Fatalf("used %d of %d, body %d", used, len(in), len(body))
		}
		if !done {
			return
		}
		std, stdErr := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(in))))
		if stdErr == nil && !bytes.Equal(std, body) {
			t.Fatalf("net/http decodes %q, we decode %q", std, body)
		}
	})
}
