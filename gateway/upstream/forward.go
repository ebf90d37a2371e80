package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
)

// ProxyRequest is a plain HTTP request that a path-prefix route forwards as is.
type ProxyRequest struct {
	Method string
	// Target is the origin-form request-target as received: path and optional query.
	Target string
	// Host is the client's Host header. It is sent unchanged (decided: backends behind a
	// reverse proxy route virtual hosts and build absolute links from it, as with
	// net/http/httputil.ReverseProxy's default).
	Host string
	// Header is the request's fields as received; hop-by-hop ones, those Connection
	// names, Content-Length and Expect (the gateway answers 100-continue itself) are
	// dropped. X-Forwarded-For gets the client address appended.
	Header codec.Header
	// Body is read until ContentLength bytes (or EOF when ContentLength is -1, sent
	// chunked). Nil or ContentLength 0: no body. Forward does not close it.
	Body          io.Reader
	ContentLength int64
	ClientAddr    netip.AddrPort
	// Timeout bounds the time until the response head arrives (the request body is sent
	// in that time); <= 0 means the cluster's. Streaming the response body afterwards is
	// bounded only by ctx, so a large download is not cut at the API timeout.
	Timeout time.Duration
}

// Forward sends r to a host of the cluster and returns the backend's response head with
// its body streaming: nothing is buffered whole either way. The returned response's
// Header has hop-by-hop fields removed; ContentLength is -1 when the backend did not
// declare one. The caller must Close resp.Body (the request counts as in flight until
// then) and must not use resp.Request. On failure the error is an *Error.
func (c *Cluster) Forward(ctx context.Context, r *ProxyRequest) (*http.Response, error) {
	if !validFieldName(r.Method) {
		return nil, newError(Invalid, c.name, "", false, fmt.Errorf("method %q is not an HTTP token", r.Method))
	}
	if len(r.Target) == 0 || r.Target[0] != '/' {
		return nil, newError(Invalid, c.name, "", false, fmt.Errorf("request target %q is not origin-form", r.Target))
	}
	u, err := url.ParseRequestURI(r.Target)
	if err != nil {
		return nil, newError(Invalid, c.name, "", false, fmt.Errorf("request target %q: %w", r.Target, err))
	}
	if !validFieldValue(r.Host) {
		return nil, newError(Invalid, c.name, "", false, fmt.Errorf("host %q holds a control byte", r.Host))
	}
	hdr := make(http.Header, len(r.Header)+2)
	if err := copyHeader(hdr, r.Header, skipProxyHeader); err != nil {
		return nil, newError(Invalid, c.name, "", false, err)
	}
	if xff := forwardedFor(hdr["X-Forwarded-For"], r.ClientAddr); xff != "" {
		hdr["X-Forwarded-For"] = []string{xff}
	}
	noDefaultUserAgent(hdr)

	h, e := c.acquire()
	if e != nil {
		return nil, e
	}
	start := time.Now()
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = c.timeout
	}
	cctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(timeout, func() { cancel(errHeaderTimeout) })
	var st sendTrace
	tctx := st.with(cctx)

	var body io.ReadCloser = http.NoBody
	length := r.ContentLength
	if r.Body != nil && length != 0 {
		body = io.NopCloser(r.Body)
	} else {
		length = 0
	}
	u.Scheme, u.Host = "http", h.addr
	hreq := (&http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          body,
		ContentLength: length,
		Host:          r.Host,
	}).WithContext(tctx)
	if r.Host == "" {
		hreq.Host = h.addr
	}

	resp, err := c.roundTrip(hreq, &st)
	fired := !timer.Stop()
	if err == nil && fired {
		// The head arrived just as the timer fired: the body is already canceled.
		resp.Body.Close()
		err = errHeaderTimeout
	}
	if err != nil {
		fe := c.fail(ctx, cctx, h, start, st.gotConn.Load(), err)
		cancel(nil)
		return nil, fe
	}
	stripHopByHop(resp.Header)
	resp.Body = &forwardBody{rc: resp.Body, c: c, h: h, parent: ctx, start: start, status: resp.StatusCode, cancel: cancel}
	return resp, nil
}

// skipProxyHeader lists the request fields Forward does not copy (beyond hop-by-hop).
func skipProxyHeader(k string) bool {
	switch k {
	case "host", "content-length", "expect":
		return true
	}
	return false
}

// forwardBody is a Forward response body: closing it ends the request's accounting.
type forwardBody struct {
	rc     io.ReadCloser
	c      *Cluster
	h      *host
	parent context.Context
	start  time.Time
	status int
	cancel context.CancelCauseFunc

	// readErr is the first read error other than EOF. Atomic because Close may run on
	// another goroutine than Read (to abort a stream), which net/http allows.
	readErr atomic.Pointer[error]
	closing atomic.Bool // set before closing: read errors from then on are our doing
	once    sync.Once
}

func (b *forwardBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && !b.closing.Load() {
		b.readErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close releases the connection (back to the pool when the body was read to the end)
// and records the outcome: a body cut short by the backend counts as a failure.
func (b *forwardBody) Close() error {
	b.closing.Store(true)
	err := b.rc.Close()
	b.once.Do(func() {
		kind := Kind(0)
		if errp := b.readErr.Load(); errp != nil {
			kind = classify(b.parent, *errp, true, false)
		}
		b.cancel(nil)
		b.c.release(b.h, b.start, kind, b.status)
	})
	return err
}
