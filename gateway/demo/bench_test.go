package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a minimal ResponseWriter, so the benchmark measures the handler only.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchOp(b *testing.B, path, body string) {
	h := NewNamed("bench")
	req := httptest.NewRequest("POST", path, nil)
	w := &discardWriter{h: http.Header{}}
	rd := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

func BenchmarkSize1KiB(b *testing.B) { benchOp(b, "/demo.size", "1024") }
func BenchmarkEcho1KiB(b *testing.B) { benchOp(b, "/demo.echo", strings.Repeat("a", 1024)) }
