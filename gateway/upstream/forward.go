package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
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
	// dropped. X-Forwarded-For gets the client address appended, Via the gateway's
	// "1.1 mgw" ("1.0 mgw" when HTTP10).
	Header codec.Header
	HTTP10 bool // the client spoke HTTP/1.0
	// Body is read until ContentLength bytes (or EOF when ContentLength is -1, sent
	// chunked). Nil or ContentLength 0: no body. Forward does not close it.
	Body          io.Reader
	ContentLength int64
	ClientAddr    netip.AddrPort
	// Timeout bounds the time until the response head arrives (the request body is sent
	// in that time); <= 0 means the cluster's. Streaming the response body afterwards is
	// bounded only by ctx, so a large download is not cut at the API timeout.
	Timeout time.Duration
	// Interim, when set, hears each interim (1xx) answer the backend sends before its
	// final one, in order (a 101 is an error, as without it): its status, and its fields
	// filtered as ProxyResponse.Header's are. header is valid only during the call. It runs
	// on the goroutine that reads the answer (Forward's caller; a reactor worker for
	// ForwardAsync), must not block, and is never called once the outcome is delivered:
	// after Forward returns or ForwardAsync's done runs, a late interim is dropped.
	Interim Interim
}

// Interim hears a backend's interim answers (ProxyRequest.Interim). An interface, not a
// func: the gateway's per-request answer implements it, so passing it allocates nothing.
type Interim interface {
	Interim(status int, header codec.Header)
}

// InterimFunc is a func as an Interim.
type InterimFunc func(status int, header codec.Header)

func (f InterimFunc) Interim(status int, header codec.Header) { f(status, header) }

// ProxyResponse is a backend's answer to Forward: its head, and its body streaming.
type ProxyResponse struct {
	Status int
	// Header is the backend's fields as received (lowercase keys, in order), without the
	// hop-by-hop ones, those Connection names, and Content-Length: the framing towards
	// the client is the gateway's to write.
	Header codec.Header
	// ContentLength is the body's length when the backend declared one (for a HEAD
	// request: what a GET would have had), else -1.
	ContentLength int64
	// Body must be closed: the request counts as in flight until then. It is nil when
	// the body came whole with the head (ForwardAsync): Whole holds it then.
	Body  io.ReadCloser
	Whole []byte
	// Arrived is when the answer came whole (ForwardAsync); zero for one that streams.
	Arrived time.Time

	pooled *[]byte // Whole's buffer, when it came from codec.PooledBody
}

// ReleaseWhole gives Whole's buffer back to the pool it came from, if it did; Whole is
// nil after. Only the last user calls it: the writer that has copied it to the wire.
func (r *ProxyResponse) ReleaseWhole() {
	p := r.pooled
	if p == nil {
		return
	}
	r.pooled, r.Whole = nil, nil
	codec.PutPooledBody(p)
}

// Forward sends r to a host of the cluster and returns the backend's response head with
// its body streaming: nothing is buffered whole either way. The caller must Close
// resp.Body. On failure the error is an *Error.
func (c *Cluster) Forward(ctx context.Context, r *ProxyRequest) (*ProxyResponse, error) {
	if e := c.checkForward(r); e != nil {
		return nil, e
	}
	var body io.Reader
	length := r.ContentLength
	if r.Body == nil || length == 0 {
		length = 0
	} else {
		body = r.Body
	}
	bp := headPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledHead {
			headPool.Put(bp)
		}
	}()
	head, err := appendForwardHead((*bp)[:0], r, length)
	*bp = head
	if err != nil {
		return nil, newError(Invalid, c.name, "", false, err)
	}

	var inline []byte
	if body != nil && length > 0 && length <= inlineBody {
		// A small body is read first and goes out with the head in one write; no
		// goroutine streams it. A client that never sends it is the session's timeout.
		ib := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(ib)
		inline = (*ib)[:length]
		if _, err := io.ReadFull(body, inline); err != nil {
			return nil, newError(Canceled, c.name, "", false, fmt.Errorf("reading the request body: %w", err))
		}
		body = nil
	}

	timeout := r.Timeout
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
	host := r.Host
	if host == "" {
		host = h.addr
	}
	head = appendHostAndEnd(head, host)
	head = append(head, inline...)
	*bp = head

	stop := func() bool { return true }
	if ctx.Done() != nil {
		// Until the body is closed, the caller giving up unblocks the exchange at once.
		stop = context.AfterFunc(ctx, func() { conn.nc.SetDeadline(aLongTimeAgo) })
	}
	b := &h1Body{conn: conn, pool: h.pool, stop: stop}
	b.refs.Store(1)
	b.writerOK.Store(true) // until a streaming writer says otherwise
	fail := func(err error) error {
		stop()
		conn.nc.Close() // ends a body still streaming; the last reference frees the slot
		b.unref()
		return c.failCall(ctx, h, start, deadline, true, err)
	}
	if _, err := conn.nc.Write(head); err != nil {
		return nil, fail(fmt.Errorf("writing the request: %w", err))
	}
	var sent chan error // a streamed body's outcome, for the error path
	if body != nil {
		sent = make(chan error, 1)
		b.refs.Add(1)
		go func() {
			src := &sourceReader{r: body}
			err := writeBody(conn.nc, src, length)
			if src.err != nil {
				// The client's body broke off (the client is gone): no answer can reach
				// it, and the backend would wait for the rest until the timeout.
				conn.nc.Close()
			}
			sent <- err
			b.writerOK.Store(err == nil)
			b.unref()
		}()
	}
	var rh http1.ResponseHead
	var interim func(*http1.ResponseHead)
	if r.Interim != nil {
		interim = func(h *http1.ResponseHead) { r.Interim.Interim(h.Status, proxyHeader(h.Header, h.Connection)) }
	}
	if err := readFinalHead(conn.br, &rh, interim); err != nil {
		if sent != nil {
			// A body that failed is the likelier cause of an answer that never came. One
			// still streaming is not waited for: it may be blocked on a slow client, and
			// closing the connection (in fail) ends it.
			select {
			case werr := <-sent:
				if werr != nil {
					err = werr
				}
			default:
			}
		}
		return nil, fail(err)
	}
	if err := conn.nc.SetReadDeadline(time.Time{}); err != nil { // the head is in: only ctx bounds the body
		return nil, fail(err)
	}
	if sent != nil {
		conn.nc.SetWriteDeadline(time.Time{})
	}
	out := &ProxyResponse{Status: rh.Status, Header: proxyHeader(rh.Header, rh.Connection), ContentLength: -1}
	b.keepAlive = rh.KeepAlive
	b.dec.ResetResponse(&rh, r.Method, 0, &respLimits)
	switch {
	case r.Method == http.MethodHead:
		out.ContentLength = rh.ContentLength // what a GET would have had; no body follows
	case b.dec.UntilClose():
		b.keepAlive = false
	case !rh.Chunked && rh.ContentLength >= 0:
		out.ContentLength = rh.ContentLength
	}
	if b.dec.Done() {
		b.done.Store(true)
	}
	b.body = http1.NewBodyReader(conn.br, &b.dec)
	out.Body = &forwardBody{rc: b, c: c, h: h, parent: ctx, start: start, status: rh.Status}
	return out, nil
}

// checkForward refuses a request that cannot go on a request line as it is.
func (c *Cluster) checkForward(r *ProxyRequest) *Error {
	if !http1.ValidFieldName(r.Method) {
		return newError(Invalid, c.name, "", false, fmt.Errorf("method %q is not an HTTP token", r.Method))
	}
	if len(r.Target) == 0 || r.Target[0] != '/' {
		return newError(Invalid, c.name, "", false, fmt.Errorf("request target %q is not origin-form", r.Target))
	}
	if err := checkTarget(r.Target); err != nil {
		return newError(Invalid, c.name, "", false, fmt.Errorf("request target %q: %w", r.Target, err))
	}
	if !http1.ValidFieldValue(r.Host) {
		return newError(Invalid, c.name, "", false, fmt.Errorf("host %q holds a control byte", r.Host))
	}
	return nil
}

// checkTarget says why an origin-form request-target cannot go on the request line as
// is: a space or control byte, or a broken percent-escape in its path (which
// url.ParseRequestURI refuses too; checked here without its allocations).
func checkTarget(t string) error {
	inPath := true
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("byte %#02x at offset %d: a space or control byte", c, i)
		case c == '?':
			inPath = false
		case c == '%' && inPath:
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return fmt.Errorf("broken percent-escape at offset %d", i)
			}
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendForwardHead appends the request line and fields of a forwarded request, except
// Host (appendHostAndEnd adds it once the host is known). length is the body's: 0 none,
// -1 chunked.
func appendForwardHead(dst []byte, r *ProxyRequest, length int64) ([]byte, error) {
	dst = http1.AppendRequestLine(dst, r.Method, r.Target)
	hdr := r.Header
	if r.Method == http.MethodOptions || r.Method == http.MethodTrace {
		hdr = decrementMaxForwards(hdr)
	}
	dst, prior, err := appendFields(dst, hdr, skipProxyHeader, true)
	if err != nil {
		return dst, err
	}
	minor := 1
	if r.HTTP10 {
		minor = 0
	}
	dst = appendVia(dst, prior.via, viaEntry(minor))
	dst = appendForwardedFor(dst, prior.xff, r.ClientAddr)
	switch {
	case length == 0:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			dst = append(dst, "Content-Length: 0\r\n"...)
		}
	case length > 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, length, 10)
		dst = append(dst, "\r\n"...)
	default:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	}
	return dst, nil
}

// decrementMaxForwards returns hdr with its Max-Forwards one less (RFC 9110 7.6.2: an
// intermediary forwarding OPTIONS or TRACE must); a copy, only when there is one. The
// session answers a 0 itself, and a value that is not a number is passed on as is.
func decrementMaxForwards(hdr codec.Header) codec.Header {
	for i, f := range hdr {
		if !strings.EqualFold(f.Key, "max-forwards") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(f.Value), 10, 63)
		if err != nil || n == 0 {
			return hdr
		}
		out := slices.Clone(hdr)
		out[i].Value = strconv.FormatUint(n-1, 10)
		return out
	}
	return hdr
}

// proxyHeader keeps the end-to-end fields of a backend's answer, in order and as read:
// the one conversion they go through on their way to the client is the canonical-case
// writing of the response head.
func proxyHeader(fields codec.Header, conn []string) codec.Header {
	out := fields[:0] // filtering in place: out never overtakes the read index
	for _, f := range fields {
		if http1.IsHopByHop(f.Key) || http1.IsConnectionToken(conn, f.Key) || f.Key == "content-length" {
			continue
		}
		out = append(out, f)
	}
	return out
}

// writeBody streams a request body: length bytes, or chunked until EOF when length is
// -1. A body shorter than its declared length is an error (the backend would wait).
func writeBody(w io.Writer, body io.Reader, length int64) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	if length >= 0 {
		n, err := io.CopyBuffer(w, io.LimitReader(body, length), buf)
		if err == nil && n < length {
			err = fmt.Errorf("request body ended after %d of %d bytes: %w", n, length, io.ErrUnexpectedEOF)
		}
		return err
	}
	for {
		// Room for the chunk-size line in front and the CRLF behind.
		n, rerr := body.Read(buf[16 : len(buf)-2])
		if n > 0 {
			size := strconv.AppendInt(buf[:0:16], int64(n), 16)
			size = append(size, "\r\n"...)
			at := 16 - len(size)
			copy(buf[at:], size)
			buf[16+n], buf[16+n+1] = '\r', '\n'
			if _, err := w.Write(buf[at : 16+n+2]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			_, err := io.WriteString(w, "0\r\n\r\n")
			return err
		}
		if rerr != nil {
			return rerr
		}
	}
}

// sourceReader remembers why a request body stopped before its end.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// inlineBody is the largest known-length request body sent in the head's write.
const inlineBody = 16 << 10

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// h1Body is a forwarded response's body on a pooled connection. Close gives the
// connection back when the body was read to its end and the request body went out
// whole; otherwise it closes it. Close may run on another goroutine than Read.
type h1Body struct {
	conn      *h1Conn
	pool      *h1Pool
	keepAlive bool
	stop      func() bool

	dec  http1.BodyDecoder
	body *http1.BodyReader

	done   atomic.Bool // read to its end
	closed atomic.Bool
	// The connection goes back to the pool or is closed once both the reader (Close)
	// and a streaming request body's writer are done with it: refs counts them.
	refs     atomic.Int32
	readerOK atomic.Bool
	writerOK atomic.Bool
}

// unref drops one user of the connection; the last one decides its fate.
func (b *h1Body) unref() {
	if b.refs.Add(-1) != 0 {
		return
	}
	if b.readerOK.Load() && b.writerOK.Load() {
		b.pool.put(b.conn, true)
	} else {
		b.pool.discard(b.conn)
	}
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.done.Store(true)
	case err != nil:
		err = bodyError(err)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	unwatched := b.stop() // false: the ctx watcher fired and may yet set the deadline
	b.readerOK.Store(b.done.Load() && b.keepAlive && unwatched)
	b.unref()
	return nil
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
		b.c.release(b.h, b.start, kind, b.status)
	})
	return err
}
