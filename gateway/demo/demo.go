// Package demo is the demo backend: an ordinary net/http server that stands in for a real
// backend. The default config runs it in-process so `mgw serve` answers demo.* APIs with no
// setup; `mgw backend` runs it alone; tests and the load-test harness call it through the
// gateway. It is stateless; a Handler may serve any number of goroutines at once.
//
// APIs (POST; the operation is the Operation-Type header or else the last path segment, so
// /demo.echo, /api/demo.echo and /v1/demo.echo all work):
//
//	demo.echo    200 with the request body, echoing Content-Type and Content-Encoding
//	demo.sleep   body "N" or "N tag": waits N ms (0..60000, ends early if the client goes
//	             away), then 200 with the request body, so concurrent sleeps can be told apart
//	demo.status  body N: answers status N (200..599)
//	demo.size    body N: answers exactly N bytes (0..64 MiB)
//
// GET /healthz answers 200 "ok". Any other request answers 200 with a JSON description of
// itself (method, path, headers including X-Forwarded-For), for reverse-proxy tests. An
// unknown demo.* operation answers 404. Every response carries Content-Length and
// X-Demo-Backend: <name>.
package demo

import (
	"net"
	"net/http"
	"time"
)

// DefaultName is the X-Demo-Backend value of New.
const DefaultName = "demo"

// Limits on what one request may ask for.
const (
	MaxSleep    = 60 * time.Second
	MaxSize     = 64 << 20
	MaxEchoBody = 16 << 20
)

// New returns the demo handler named DefaultName.
func New() http.Handler { return NewNamed(DefaultName) }

// NewNamed returns the demo handler whose responses carry X-Demo-Backend: name, so that
// routing tests can see which backend answered.
func NewNamed(name string) http.Handler {
	return &handler{name: []string{name}}
}

// NewServer returns an *http.Server serving NewNamed(name) with timeouts suitable for a
// backend behind the gateway. The caller owns it (Serve, Shutdown, Close).
func NewServer(name string) *http.Server {
	return &http.Server{
		Handler:           NewNamed(name),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves New on ln until ln is closed (returning the error from Accept).
func Serve(ln net.Listener) error { return NewServer(DefaultName).Serve(ln) }

// ListenAndServe listens on addr (host:port) and serves New until the listener fails.
func ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ln)
}
