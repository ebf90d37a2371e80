package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mgw-project/mgw/codec"
)

// Call sends one API call to a host of the cluster, mapped as mmtp.md "Backend mapping
// (HTTP/1.1 backends)" says:
//
//   - POST <path_prefix>/<operation> (the operation path-escaped), Operation-Type: <op>;
//   - every request header copied under its own name, except sign and nonce, hop-by-hop
//     fields and those Connection names, host (the backend's own address is sent),
//     content-length (recomputed) and expect;
//   - X-Forwarded-For: the client address. An HTTP request's own X-Forwarded-For is kept
//     and the address appended; an MMTP client's is replaced (it is only a header the
//     client chose, and MMTP has no proxies in front that would add it);
//   - Via: a call from the HTTP listener gets "1.1 mgw" after the client's Via (RFC 9110
//     7.6.3); an MMTP call's Via values pass as sent, joined in one field;
//   - the body as is, with Content-Encoding: gzip when req.Gzip.
//
// The answer carries the backend's status, its whole body (over MaxResponseBytes: a
// Failed error) and its headers lowercased without hop-by-hop fields or content-length;
// a Content-Encoding of gzip becomes Gzip and is dropped. timeout bounds the whole
// exchange, body included; <= 0 means the cluster's. On failure the error is an *Error.
// Call reads req only until it returns and retains nothing of it; safe for concurrent use.
func (c *Cluster) Call(ctx context.Context, req *codec.Request, timeout time.Duration) (*codec.Response, error) {
	if req.Operation == "" {
		return nil, newError(Invalid, c.name, "", false, errors.New("operation type is empty"))
	}
	bp := headPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledHead {
			headPool.Put(bp)
		}
	}()
	head, err := appendCallHead((*bp)[:0], c.pathPrefix, req)
	*bp = head
	if err != nil {
		return nil, newError(Invalid, c.name, "", false, err)
	}

	if timeout <= 0 {
		timeout = c.timeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	h, conn, start, e := c.connect(ctx, deadline)
	if e != nil {
		return nil, e
	}
	head = appendHostAndEnd(head, h.addr)
	body := req.Body
	if len(body) <= inlineBody {
		head, body = append(head, body...), nil // one write; the grown buffer is pooled
	}
	*bp = head

	stop := func() bool { return true }
	if ctx.Done() != nil {
		// The caller may give up before the deadline: unblock the exchange at once.
		stop = context.AfterFunc(ctx, func() { conn.nc.SetDeadline(aLongTimeAgo) })
	}
	r, err := exchange(conn, head, body, c.maxResp)
	// A watcher that already fired (or is firing) may still set the deadline: such a
	// connection must not go back to the pool, where another call would inherit it.
	unwatched := stop()
	if err != nil {
		h.pool.discard(conn)
		if errors.Is(err, errTooLarge) {
			c.release(h, start, Failed, 0)
			return nil, newError(Failed, c.name, h.name, true, fmt.Errorf("%w (%d bytes)", err, c.maxResp))
		}
		return nil, c.failCall(ctx, h, start, deadline, true, err)
	}
	h.pool.put(conn, r.keepAlive && unwatched)
	out := &codec.Response{Status: r.status, Header: r.header, Body: r.body, Gzip: r.gzip}
	c.release(h, start, 0, r.status)
	return out, nil
}

// Connect retries: a connect that failed sent nothing, so trying again is always safe.
const (
	maxConnectAttempts = 3
	connectBackoff     = 25 * time.Millisecond // doubled per attempt on the same host
)

// connect picks a host and gets a connection to it, with the request counted in flight
// from start. A connect failure is tried again before the caller sees it (and before the
// route's fallback chain): on another host when the cluster has one available, else on
// the same one after a short backoff, up to maxConnectAttempts and within the deadline.
// Each failed attempt is released and counted against its host, so outlier detection
// and the metrics still see it.
func (c *Cluster) connect(ctx context.Context, deadline time.Time) (h *host, conn *h1Conn, start time.Time, e *Error) {
	var failed *Error
	for attempt := 1; ; attempt++ {
		h, e = c.acquire()
		if e != nil {
			if failed != nil {
				// The earlier connect failure says more than "no host left" (its host
				// may just have been ejected for it).
				return nil, nil, start, failed
			}
			return nil, nil, start, e
		}
		start = time.Now()
		var err error
		conn, err = h.pool.get(ctx, deadline)
		if err == nil {
			return h, conn, start, nil
		}
		failed = c.failCall(ctx, h, start, deadline, false, err)
		if failed.Kind != ConnectFailed || attempt >= maxConnectAttempts {
			return nil, nil, start, failed
		}
		c.m.connectRetries.Inc()
		if c.otherHostAvailable(h) {
			continue
		}
		wait := connectBackoff << (attempt - 1)
		if time.Until(deadline) <= wait {
			return nil, nil, start, failed
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil, start, failed
		}
	}
}

// otherHostAvailable says whether a pick could land on a host other than h.
func (c *Cluster) otherHostAvailable(h *host) bool {
	for _, o := range c.hosts {
		if o != h && o.available() {
			return true
		}
	}
	return false
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes one request (head, then body unless it is already in head) and reads
// the whole answer.
func exchange(conn *h1Conn, head, body []byte, maxResp int64) (*h1Response, error) {
	var err error
	if len(body) == 0 {
		_, err = conn.nc.Write(head)
	} else {
		bufs := net.Buffers{head, body}
		_, err = bufs.WriteTo(conn.nc)
	}
	if err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	return readResponse(conn.br, maxResp)
}

// failCall classifies a failed Call, releases the request and builds its error.
func (c *Cluster) failCall(parent context.Context, h *host, start, deadline time.Time, sent bool, err error) *Error {
	timedOut := errors.Is(err, errPoolWait) || errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline)
	kind := classify(parent, err, sent, timedOut)
	c.release(h, start, kind, 0)
	return newError(kind, c.name, h.name, sent, err)
}

// skipAPIHeader lists the request fields Call does not copy (beyond hop-by-hop ones).
func skipAPIHeader(k string, gzip bool) bool {
	switch k {
	case "sign", "nonce", "host", "content-length", "expect", "operation-type":
		return true
	case "content-encoding":
		return gzip // set from the flag; any other coding passes as sent
	}
	return false
}
