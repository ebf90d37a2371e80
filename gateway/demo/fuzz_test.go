package demo

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// countWriter records what a handler wrote without keeping the body (demo.size may ask for
// 64 MiB).
type countWriter struct {
	h      http.Header
	code   int
	n      int
	wrote  bool
	header http.Header // snapshot at WriteHeader
}

func (c *countWriter) Header() http.Header { return c.h }
func (c *countWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(200)
	}
	c.n += len(b)
	return len(b), nil
}
func (c *countWriter) WriteHeader(code int) {
	if !c.wrote {
		c.code, c.wrote, c.header = code, true, c.h.Clone()
	}
}

// FuzzHandler sends arbitrary operations and bodies (the decoders here are the small
// integer bodies of sleep/status/size; sleep's may carry a tag). The handler must not panic, must answer a final
// status with X-Demo-Backend, and must send exactly Content-Length bytes.
func FuzzHandler(f *testing.F) {
	for _, s := range [][2]string{
		{"demo.echo", "hi"}, {"demo.size", "1024"}, {"demo.status", "503"}, {"demo.sleep", "1"}, {"demo.sleep", " 1\ttag"},
		{"demo.size", "-1"}, {"demo.status", " 200\n"}, {"demo.nope", ""}, {"x.y", "zz"}, {"", ""},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	h := NewNamed("fz")
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		req := httptest.NewRequest("POST", "/api/x", bytes.NewReader(body))
		req.Header.Set("Operation-Type", op)
		if op == "demo.sleep" {
			// Never sleep in a fuzz run: the client has already gone away.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req = req.WithContext(ctx)
		}
		w := &countWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		if !w.wrote {
			if op == "demo.sleep" {
				return // cancelled before answering, as it should
			}
			t.Fatalf("%q: no response", op)
		}
		if w.code < 200 || w.code > 599 {
			t.Fatalf("%q %q: status %d", op, body, w.code)
		}
		if w.header.Get("X-Demo-Backend") != "fz" {
			t.Fatalf("%q: no X-Demo-Backend", op)
		}
		if cl := w.header.Get("Content-Length"); cl != strconv.Itoa(w.n) {
			t.Fatalf("%q %q: Content-Length %q, wrote %d", op, body, cl, w.n)
		}
	})
}
