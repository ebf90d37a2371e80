package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	hdr := make(http.Header, len(req.Header)+4)
	if err := copyHeader(hdr, req.Header, func(k string) bool { return skipAPIHeader(k, req.Gzip) }); err != nil {
		return nil, newError(Invalid, c.name, "", false, err)
	}
	if !validFieldValue(req.Operation) {
		return nil, newError(Invalid, c.name, "", false, fmt.Errorf("operation type %q holds a control byte", req.Operation))
	}
	hdr["Operation-Type"] = []string{req.Operation}
	noDefaultUserAgent(hdr)
	if req.Gzip {
		hdr["Content-Encoding"] = []string{"gzip"}
	}
	var prior []string
	if req.Protocol == codec.HTTP1 {
		prior = hdr["X-Forwarded-For"]
	}
	if xff := forwardedFor(prior, req.Conn.ClientAddr); xff != "" {
		hdr["X-Forwarded-For"] = []string{xff}
	} else {
		delete(hdr, "X-Forwarded-For")
	}

	h, e := c.acquire()
	if e != nil {
		return nil, e
	}
	start := time.Now()
	if timeout <= 0 {
		timeout = c.timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var st sendTrace
	cctx = st.with(cctx)

	var body io.Reader = http.NoBody
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(cctx, http.MethodPost, h.base+c.pathPrefix+"/"+url.PathEscape(req.Operation), body)
	if err != nil {
		c.release(h, start, Invalid, 0)
		return nil, newError(Invalid, c.name, h.name, false, fmt.Errorf("operation type %q: %w", req.Operation, err))
	}
	hreq.Header = hdr

	resp, err := c.roundTrip(hreq, &st)
	if err != nil {
		return nil, c.fail(ctx, cctx, h, start, st.gotConn.Load(), err)
	}
	b, err := readBody(resp.Body, resp.ContentLength, c.maxResp)
	resp.Body.Close()
	if err != nil {
		if errors.Is(err, errTooLarge) {
			c.release(h, start, Failed, 0)
			return nil, newError(Failed, c.name, h.name, true, fmt.Errorf("%w (%d bytes)", err, c.maxResp))
		}
		return nil, c.fail(ctx, cctx, h, start, true, err)
	}
	out := &codec.Response{Status: resp.StatusCode, Body: b}
	out.Header, out.Gzip = responseHeader(resp.Header)
	c.release(h, start, 0, resp.StatusCode)
	return out, nil
}

// fail classifies a failed exchange, releases the request and builds its error.
func (c *Cluster) fail(parent, cctx context.Context, h *host, start time.Time, sent bool, err error) *Error {
	timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) || context.Cause(cctx) == errHeaderTimeout
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

// readBody reads a whole response body of declared length n (-1: unknown) up to max.
func readBody(r io.Reader, n, max int64) ([]byte, error) {
	if n > max {
		return nil, errTooLarge
	}
	if n == 0 {
		return nil, nil
	}
	if n > 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		// Read on to EOF: net/http reuses the connection only when the body reported
		// EOF before Close; a body closed "early" costs a new connection per call.
		var one [1]byte
		if k, err := r.Read(one[:]); k != 0 || err != io.EOF {
			if err == nil || err == io.EOF {
				err = errors.New("response body longer than its Content-Length")
			}
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}
