package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/internal/pipe"
	"github.com/mgw-project/mgw/netpoll"
)

// ForwardAsync is Forward without a goroutine waiting for the backend (issue 11 item 3),
// for a request whose body is whole in memory (body; r.Body and r.ContentLength are
// Forward's and ignored here). As with CallAsync, the request goes out on a connection
// the gateway's reactor serves, the answer is parsed on a reactor worker as it arrives,
// and done runs there (or on the caller's goroutine when the request fails before
// anything was sent, or on a timer's at the deadline), exactly once. body must stay
// untouched until then.
//
// An answer that comes whole with its head (in the bytes of one read) is delivered whole
// (ProxyResponse.Whole): the connection is back in its pool before done runs, and
// nothing need be closed. Any other is delivered at its head with a Body that streams the
// rest through a bounded pipe.Pipe: the backend's reads pause while the reader lags. As
// with Forward, the deadline (r's Timeout, else the cluster's) bounds the time until the
// head; a body streaming afterwards is bounded by its reader, who may Close it at any
// time, and by twice the pool's idle timeout when the backend stalls while the reader waits.
// The connections are the host's async pool's, shared with CallAsync.
//
// Without an engine (a cluster built for tests or tools), ForwardAsync is Forward on the
// calling goroutine.
func (c *Cluster) ForwardAsync(r *ProxyRequest, body []byte, done func(*ProxyResponse, error)) {
	c.ForwardAsyncAt(r, body, time.Now(), done)
}

// ForwardAsyncAt is ForwardAsync for a caller that read the clock already: now is when
// the call begins, the start of its deadline (as CallAsyncAt's).
func (c *Cluster) ForwardAsyncAt(r *ProxyRequest, body []byte, now time.Time, done func(*ProxyResponse, error)) {
	if c.eng == nil {
		fr := *r
		fr.Body, fr.ContentLength = bytes.NewReader(body), int64(len(body))
		done(c.Forward(context.Background(), &fr))
		return
	}
	if e := c.checkForward(r); e != nil {
		done(nil, e)
		return
	}
	bp := headPool.Get().(*[]byte)
	head, err := appendForwardHead((*bp)[:0], r, int64(len(body)))
	*bp = head
	if err != nil {
		putHead(bp)
		done(nil, newError(Invalid, c.name, "", false, err))
		return
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = c.timeout
	}
	a := &asyncCall{c: c, body: body, fwd: done, interim: r.Interim, method: r.Method, hostName: r.Host, buf: bp, base: len(head)}
	a.begin(now, timeout)
}

// streamHigh is how many bytes of a streamed answer may wait for its reader before the
// backend's connection stops being read.
const streamHigh = 256 << 10

// proxyResponse is the answer's head in Forward's form.
func (ac *asyncConn) proxyResponse(method string) *ProxyResponse {
	h := &ac.head
	resp := &ProxyResponse{Status: h.Status, Header: proxyHeader(h.Header, h.Connection), ContentLength: -1}
	switch {
	case method == http.MethodHead:
		resp.ContentLength = h.ContentLength // what a GET would have had; no body follows
	case ac.body.UntilClose():
	case !h.Chunked && h.ContentLength >= 0:
		resp.ContentLength = h.ContentLength
	}
	return resp
}

// fwdStream is a forwarded answer's body on its way from the reactor to its reader. The
// call was delivered at the head; its host is released when the stream ends (end), as
// Forward releases it when its body is closed.
type fwdStream struct {
	c      *Cluster
	ac     *asyncConn
	p      *pipe.Pipe
	h      *host
	start  time.Time
	status int
	keep   bool // the connection may carry another request once the body is in
	// got counts the body bytes read from the backend; seen is its value at the last
	// idle timeout (OnTimeout alone touches it; -1 before the first).
	got  atomic.Int64
	seen int64
}

// startStream delivers a's answer at its head, with the rest of the body to stream;
// n bytes of data were read.
func (ac *asyncConn) startStream(a *asyncCall, n int, data []byte) (int, error) {
	cl, ok := a.claim()
	if !ok {
		return n, nil // the deadline took it, and is closing the connection (drop)
	}
	st := &fwdStream{c: a.c, ac: ac, p: pipe.New(ac.c, streamHigh), h: cl.h, start: cl.start, status: ac.head.Status,
		keep: ac.head.KeepAlive && !ac.body.UntilClose(), seen: -1}
	cl.h = nil // released when the stream ends
	resp := ac.proxyResponse(a.method)
	resp.Body = &streamBody{st: st}
	ac.mu.Lock()
	if ac.call == a {
		ac.call = nil
	}
	ac.stream = st
	ac.mu.Unlock()
	if len(ac.buf) > 0 {
		_, _ = st.p.Write(ac.buf) // copies
	}
	if ac.pooled != nil {
		codec.PutPooledBody(ac.pooled)
	}
	ac.buf, ac.pooled = nil, nil
	a.settle(cl, 0, 0, time.Now())
	a.fwd(resp, nil)
	return n, nil
}

// streamBody decodes a streamed answer's body from data into its pipe, and ends the
// stream at the end of the body.
func (ac *asyncConn) streamBody(st *fwdStream, data []byte) (int, error) {
	off := 0
	for {
		piece, n, done, err := ac.body.Decode(data[off:])
		off += n
		if err != nil {
			err = bodyError(err)
			if ac.takeStream(st) {
				st.end(err)
			}
			ac.c.Close()
			return len(data), err
		}
		if len(piece) > 0 {
			st.got.Add(int64(len(piece)))
			if _, werr := st.p.Write(piece); werr != nil {
				// The reader gave up (Close), and closes the connection: drop the rest.
				return len(data), nil
			}
		}
		if done {
			if !ac.takeStream(st) {
				return len(data), nil
			}
			// The pipe lets go of the connection's reads before the connection goes
			// back to the pool, and the reader sees the end only after that: a client
			// that sends its next request as soon as it has this answer finds the
			// connection idle instead of dialing another.
			keep := st.keep && off == len(data) && ac.c.QueuedBytes() == 0
			st.p.LetGo()
			if keep {
				ac.p.put(ac)
			} else {
				ac.c.Close()
			}
			st.end(nil)
			return len(data), nil
		}
		if len(piece) == 0 {
			return off, nil
		}
	}
}

// stalled says, at an idle timeout, whether the backend has sent nothing since the
// previous one while the reader waits with nothing buffered. One quiet period is not
// enough: the reader may have just drained the pipe, whose resumed reads are still on
// their way to a worker.
func (st *fwdStream) stalled() bool {
	g := st.got.Load()
	if st.p.Buffered() > 0 || g != st.seen {
		st.seen = g
		return false
	}
	return true
}

// takeStream takes st off the connection; false when another party (the close, the
// reader) took it first and ends it.
func (ac *asyncConn) takeStream(st *fwdStream) bool {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if ac.stream != st {
		return false
	}
	ac.stream = nil
	return true
}

// end finishes the stream with err (nil: the body is whole) and releases its host. Only
// the party that took the stream off its connection (takeStream, or OnClose) calls it,
// so it runs once.
func (st *fwdStream) end(err error) {
	kind := Kind(0)
	if err != nil {
		kind = Failed
	}
	st.p.Finish(err)
	st.c.release(st.h, st.start, kind, st.status)
}

// streamBody is a streamed answer's Body for its reader.
type streamBody struct{ st *fwdStream }

func (b *streamBody) Read(p []byte) (int, error) { return b.st.p.Read(p) }

// errReaderClosed is what the pipe's writer sees after the reader's Close.
var errReaderClosed = errors.New("the reader closed the answer's body")

// Close gives up the rest of the body: the connection, which still has some of it to
// read, is closed. After the end of the body it only lets go of the bytes buffered. A
// second Close finds the pipe abandoned and the stream taken already: it does nothing.
func (b *streamBody) Close() error {
	st := b.st
	st.p.Abandon(errReaderClosed)
	if st.ac.takeStream(st) {
		st.end(nil) // the reader's choice, not the backend's failure (as Forward counts it)
		st.ac.c.CloseWithReason(netpoll.ReasonLocal)
	}
	return nil
}
