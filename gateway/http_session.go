package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/gateway/upstream"
	"github.com/mgw-project/mgw/netpoll"
)

// httpSession is one HTTP/1.1 connection. Requests on it are answered in order: once a
// request is complete the session pauses reading, runs it as a pool task, writes the
// answer, and resumes (the reactor then hands back any pipelined bytes it kept). An API
// request (POST /api/<op> or an Operation-Type header) buffers its body, bounded by the
// listener's limit; a plain proxied request streams its body to the backend as it arrives.
type httpSession struct {
	sessionBase

	// Touched only by the reactor's worker and onTimeout.
	ex *httpExchange // the request being read; nil between requests

	// Guarded by mu:
	serving   bool // a response is being produced
	closeNext bool // drain: close after the current response
	// answered: a proxied request was answered before its body was all in. The reactor
	// reads the rest and drops it, then closes: closing at once would reset a client
	// still sending before it read the answer.
	answered bool
}

// maxLingerBytes bounds the body bytes dropped after an early answer before the
// connection is closed anyway.
const maxLingerBytes = 16 << 20

// httpExchange is the state of one request while it is read. It lives only from the
// first byte of a request to its response, so an idle keep-alive connection holds none.
type httpExchange struct {
	head     http1.RequestHead
	body     http1.BodyDecoder
	headDone bool
	api      bool
	buf      []byte      // an API request's body so far
	bs       *bodyStream // a proxied request's body on its way to the backend
	bodyDone bool
	// discard: the backend side stopped reading the body (it answered, or its call
	// ended); the rest is read and dropped.
	discard bool
	dropped int64
	// bodyBy is when the body must be all in (the listener's body_timeout after the end
	// of the head); zero without a body or a timeout.
	bodyBy time.Time
}

var exchangePool = sync.Pool{New: func() any { return &httpExchange{head: http1.RequestHead{ContentLength: -1}} }}

func newHTTPSession(l *listener, c netpoll.Conn, info codec.ConnInfo) *httpSession {
	return &httpSession{sessionBase: newSessionBase(l, c, info)}
}

func (s *httpSession) onData(data []byte) (int, error) {
	off, wait, err := s.readProxy(data)
	if wait {
		return off, err
	}
	for off < len(data) {
		s.mu.Lock()
		serving := s.serving
		waiting := serving && (s.ex == nil || s.ex.bodyDone)
		s.mu.Unlock()
		if waiting {
			return off, nil // pipelined bytes wait in the reactor until this answer is out
		}
		if s.ex == nil {
			s.ex = exchangePool.Get().(*httpExchange)
			s.ex.head.Reset()
		}
		ex := s.ex
		if !ex.headDone {
			n, err := http1.ParseHead(data[off:], &s.l.httpLimits, &ex.head)
			if err != nil {
				s.reject(err)
				return len(data), nil
			}
			if n == 0 {
				return off, nil
			}
			off += n
			ex.headDone = true
			s.spoke()
			bodyDone, err := s.begin(ex)
			if err != nil {
				s.reject(err)
				return len(data), nil
			}
			if bodyDone {
				continue // ex may already be answered and recycled: not read again
			}
		}
		if !ex.bodyBy.IsZero() && !time.Now().Before(ex.bodyBy) {
			s.bodyLate(ex)
			return len(data), nil
		}
		chunk, n, done, err := ex.body.Decode(data[off:])
		off += n
		if done && err == nil && !ex.api {
			// The body's last bytes: the request counts as whole before they reach the
			// backend, since a backend that knows the length may answer as soon as it has
			// them. Marked after, that answer found the body unfinished and closed the
			// connection with pipelined requests behind it unanswered.
			if !s.finishBody(ex, chunk) {
				return len(data), nil
			}
			continue
		}
		if err != nil {
			if ex.bs != nil {
				ex.bs.Finish(err)
			}
			if s.isAnswered() {
				s.c.CloseWithReason(netpoll.ReasonHandler) // no 400 behind the answer
			} else {
				s.reject(err)
			}
			return len(data), nil
		}
		if len(chunk) > 0 {
			if ex.api {
				ex.buf = append(ex.buf, chunk...)
			} else if !ex.discard {
				if _, err := ex.bs.Write(chunk); err != nil {
					// The backend side stopped reading: an answer is on its way (an
					// error here used to close the connection at once, losing it).
					ex.discard = true
				}
			}
			if ex.discard {
				ex.dropped += int64(len(chunk))
				if ex.dropped > maxLingerBytes && s.isAnswered() {
					s.c.CloseAfterFlush(netpoll.ReasonLocal)
					return len(data), nil
				}
			}
		}
		if done {
			s.mu.Lock()
			ex.bodyDone = true
			s.mu.Unlock()
			s.bodyIn(ex)
			s.serve(ex)
		} else if n == 0 {
			s.aimBodyClock(ex)
			return off, nil
		}
	}
	return off, nil
}

// finishBody ends a proxied request's streamed body with its last chunk. It returns false
// when the connection is closing. Once the body counts as done, the request's answer may be
// written and ex recycled (next) at any moment: what is needed of it is read before.
func (s *httpSession) finishBody(ex *httpExchange, last []byte) bool {
	bs, discard := ex.bs, ex.discard
	s.bodyIn(ex)
	// Pause before the body counts as done: its ResumeRead must find the pause to undo.
	s.c.PauseRead()
	s.mu.Lock()
	ex.bodyDone = true
	answered := s.answered
	s.mu.Unlock()
	if answered {
		// The answer went out before the body; now it is all in, close.
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
		return false
	}
	if len(last) > 0 && !discard {
		// An error means the backend side stopped reading: its answer is on its way,
		// and next finds the body done and keeps the connection.
		_, _ = bs.Write(last)
	}
	bs.Finish(nil)
	return true
}

// begin starts serving a request whose head is complete: an API request once its body is
// in, a proxied one at once with its body streaming behind it. bodyDone says the request
// has no body to read; it is returned because once the request is submitted, its task may
// answer and recycle ex before the caller looks at it again.
func (s *httpSession) begin(ex *httpExchange) (bodyDone bool, err error) {
	h := &ex.head
	ex.api = http1.IsAPIRequest(h)
	lim := &s.l.httpLimits
	if ex.api {
		lim = &s.l.apiLimits
		if h.ContentLength > lim.MaxBodyBytes {
			return false, &http1.Error{Status: http.StatusRequestEntityTooLarge,
				Reason: "Content-Length " + itoa(int(h.ContentLength)) + " over the API body limit of " + itoa(int(lim.MaxBodyBytes)) + " bytes"}
		}
	}
	if h.HasBody() {
		ex.body.Reset(h, lim)
		if d := s.l.cfg.BodyTimeout.D(); d > 0 {
			ex.bodyBy = time.Now().Add(d)
			s.aimBodyClock(ex)
		}
		if h.ExpectContinue {
			s.c.Write(http1.Append100Continue(nil))
		}
	} else {
		ex.bodyDone = true
	}
	bodyDone = ex.bodyDone
	if ex.api {
		if bodyDone {
			s.serve(ex)
		}
		return bodyDone, nil
	}
	var body io.Reader
	if !bodyDone {
		bs := newBodyStream(s.c, bodyStreamHigh)
		ex.bs, body = bs, bs
	}
	s.serve(ex)
	s.proxy(ex, body)
	return bodyDone, nil
}

// serve marks the connection busy. Reading stops once the request's body is in (at once
// for an API request); a proxied body goes on streaming while its request is served.
func (s *httpSession) serve(ex *httpExchange) {
	s.mu.Lock()
	s.serving = true
	s.mu.Unlock()
	if ex.bodyDone {
		s.c.PauseRead()
	}
	if ex.api {
		s.runAPI(ex)
	}
}

func (s *httpSession) runAPI(ex *httpExchange) {
	req := http1.ToRequest(&ex.head, ex.buf, s.connInfo())
	req.Received = time.Now()
	ex.buf = nil // the request owns it now
	minor, keep := ex.head.Minor, ex.head.KeepAlive
	g := s.l.g
	answer := func(resp *codec.Response) { s.writeWhole(minor, resp, keep) }
	// Admission before work, on the reactor worker; requests on one connection are
	// served one at a time, so it holds none when this one comes.
	if r := g.adm.admit(0); r != admitted {
		answer(g.adm.answers[r])
		return
	}
	g.submit(req, func() *codec.Response { return g.handle(context.Background(), req) }, answer, g.adm.connIdle)
}

func (s *httpSession) proxy(ex *httpExchange, body io.Reader) {
	req := http1.ToRequest(&ex.head, nil, s.connInfo())
	req.Received = time.Now()
	length := ex.head.ContentLength
	if ex.head.Chunked {
		length = -1
	}
	minor, keep, head := ex.head.Minor, ex.head.KeepAlive, ex.head.Method == http.MethodHead
	g := s.l.g
	// The exchange is over once answered: a body still streaming in has nobody left to
	// read it (the transport need not close a body it stopped sending). Abandoning it
	// resumes reads it held and lets the reactor drop the rest.
	endBody := func() {
		if bs, ok := body.(*bodyStream); ok {
			bs.Abandon(errAnswered)
		}
	}
	streaming := false // set by the task before the backend's answer starts out
	answer := func(resp *codec.Response) {
		endBody()
		if streaming {
			// Half a response is out: the client can only be told by a close.
			s.c.CloseWithReason(netpoll.ReasonHandler)
			return
		}
		s.writeWhole(minor, resp, keep)
	}
	if r := g.adm.admit(0); r != admitted {
		answer(g.adm.answers[r])
		return
	}
	g.submit(req, func() *codec.Response {
		resp, ans := g.proxy(context.Background(), req, body, length)
		if ans != nil {
			return ans
		}
		streaming = true
		s.writeStream(minor, resp, keep, head)
		endBody()
		return nil
	}, answer, g.adm.connIdle)
}

var errAnswered = errors.New("answered before the request body was read")

// writeWhole writes a complete response and readies the connection for the next request.
func (s *httpSession) writeWhole(minor int, resp *codec.Response, keep bool) {
	b := bytebufferpool.Get()
	b.B = http1.AppendResponse(b.B[:0], minor, resp, keep && s.keepOpen())
	s.c.Write(b.B)
	bytebufferpool.Put(b)
	s.next(keep)
}

// writeStream copies a backend's response to the client as it arrives, waiting for the
// socket when the client reads slower than the backend sends.
func (s *httpSession) writeStream(minor int, resp *upstream.ProxyResponse, keep, headOnly bool) {
	defer resp.Body.Close()
	length := resp.ContentLength
	keep = keep && s.keepOpen()
	chunked := length < 0 && minor == 1 && !headOnly && bodyAllowed(resp.Status)
	keep = http1.ResponseKeepAlive(minor, resp.Status, length, keep)
	b := bytebufferpool.Get()
	defer bytebufferpool.Put(b)
	b.B = http1.AppendResponseHead(b.B[:0], minor, resp.Status, resp.Header, length, keep)
	if headOnly || !bodyAllowed(resp.Status) {
		err := s.c.Write(b.B)
		s.next(keep && err == nil)
		return
	}
	bp := streamBufPool.Get().(*[]byte)
	defer streamBufPool.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			// The head goes out with the first chunk: one write for a small answer.
			if chunked {
				b.B = http1.AppendChunk(b.B, buf[:n])
			} else {
				b.B = append(b.B, buf[:n]...)
			}
		}
		if err == io.EOF && chunked {
			b.B = http1.AppendLastChunk(b.B)
		}
		if len(b.B) > 0 && (n > 0 || err != nil) {
			if werr := s.c.Write(b.B); werr != nil {
				s.next(false)
				return
			}
			b.B = b.B[:0]
			// A slow client slows the copy instead of growing the queue to the hard
			// limit (which would close it); a closed one ends it at the next Write.
			_ = s.c.WaitWritable(context.Background(), streamQueueHigh)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// The backend broke off mid-body: the client cannot be told but by a close.
			s.next(false)
			return
		}
	}
	s.next(keep)
}

// streamBufPool holds writeStream's copy buffers: one per response was 8 % of the proxy
// path's CPU in allocation and zeroing, plus the GC work it caused.
var streamBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// keepOpen says whether the connection may take another request (not while draining).
func (s *httpSession) keepOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closeNext
}

// next ends the current exchange: the connection closes, or reads the next request.
func (s *httpSession) next(keep bool) {
	s.mu.Lock()
	ex := s.ex
	bodyDone := ex == nil || ex.bodyDone
	s.serving = false
	if !bodyDone {
		// Answered before the body was all in (reading goes on: a streamed body is
		// never paused): the reactor drops the rest and closes.
		s.answered = true
		s.mu.Unlock()
		return
	}
	if !keep || s.closeNext {
		s.mu.Unlock()
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
		return
	}
	s.ex = nil
	s.mu.Unlock()
	ex.buf, ex.bs, ex.bodyDone, ex.api, ex.headDone, ex.discard, ex.dropped = nil, nil, false, false, false, false, 0
	ex.bodyBy = time.Time{}
	exchangePool.Put(ex)
	s.c.ResumeRead()
}

func (s *httpSession) isAnswered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered
}

// reject answers a request the codec refused and closes the connection: after a framing
// error the next request's first byte is unknowable.
func (s *httpSession) reject(err error) { s.rejectWith(err, netpoll.ReasonHandler) }

// rejectWith is reject closing with the given reason.
func (s *httpSession) rejectWith(err error, why netpoll.CloseReason) {
	status, reason := http.StatusBadRequest, err.Error()
	if he := http1.AsError(err); he != nil {
		status, reason = he.Status, he.Reason
	}
	code := codec.ErrBadRequest
	if status == http.StatusRequestEntityTooLarge || status == http.StatusRequestURITooLong ||
		status == http.StatusRequestHeaderFieldsTooLarge {
		code = codec.ErrTooLarge
	}
	s.l.g.m.protocolError(s.l.cfg.Name, "http_"+itoa(status))
	b := bytebufferpool.Get()
	b.B = http1.AppendResponse(b.B[:0], 1, codec.ErrorResponse(status, code, reason), false)
	s.c.Write(b.B)
	bytebufferpool.Put(b)
	s.c.CloseAfterFlush(why)
}

func (s *httpSession) drain() {
	s.mu.Lock()
	s.closeNext = true
	busy := s.serving || s.ex != nil
	s.mu.Unlock()
	if !busy {
		s.c.CloseAfterFlush(netpoll.ReasonShutdown)
	}
}

func (s *httpSession) onTimeout(kind netpoll.TimeoutKind) {
	s.mu.Lock()
	busy, answered := s.serving, s.answered
	inBody := s.ex != nil && s.ex.headDone
	// The exchange is recycled only once its body is done, and bodyDone is set under mu.
	var reading *httpExchange
	if ex := s.ex; inBody && !ex.bodyDone && !ex.bodyBy.IsZero() {
		reading = ex
	}
	s.mu.Unlock()
	if reading != nil {
		// The idle timeout is aimed at the body deadline while a body is read.
		if !time.Now().Before(reading.bodyBy) {
			s.bodyLate(reading)
			return
		}
		s.aimBodyClock(reading)
	}
	if answered {
		s.c.CloseWithReason(netpoll.ReasonTimeout) // the answer is out; no 408 behind it
		return
	}
	if busy {
		// Bytes pending while an answer is produced are pipelined requests held back
		// until it is out, not a stalled head; and a 408 now would land in the middle of
		// that answer. A streamed body that stalls is bounded by the backend timeout.
		return
	}
	if kind == netpoll.TimeoutPartial && !s.needProxy || inBody {
		// A client that began a request and stalls: slow headers (the frame timeout), or
		// an API body that stops (its bytes are taken as they come, so only the idle
		// timeout sees it). Half a PROXY header gets no 408: its sender has not reached
		// HTTP.
		s.reject(&http1.Error{Status: http.StatusRequestTimeout, Reason: "request not completed in time"})
		return
	}
	s.c.CloseWithReason(netpoll.ReasonTimeout)
}

// aimBodyClock points the idle timeout at the body deadline, when that comes first, so a
// body that trickles or stops is ended at its deadline by the engine's timeout sweep:
// no timer per request. Called on each arrival of body bytes (the engine counts idle
// time from the last bytes read).
func (s *httpSession) aimBodyClock(ex *httpExchange) {
	if ex.bodyBy.IsZero() {
		return
	}
	left := max(time.Until(ex.bodyBy), time.Millisecond)
	if idle := s.l.idleTimeout(); idle > 0 && idle < left {
		left = idle
	}
	s.c.SetIdleTimeout(left)
}

// bodyIn gives the connection its idle timeout back once a body timed by aimBodyClock is in.
func (s *httpSession) bodyIn(ex *httpExchange) {
	if !ex.bodyBy.IsZero() {
		s.c.SetIdleTimeout(s.l.idleTimeout())
	}
}

// bodyLate ends a request whose body missed its deadline. An API request is not served
// before its body is in, so it gets a 408. A proxied request is already at the backend
// and its answer may be on its way: the connection is closed, which also fails the body
// stream and so the backend call (onClose).
func (s *httpSession) bodyLate(ex *httpExchange) {
	s.l.g.log.Debug("request body not in by body_timeout", "listener", s.l.cfg.Name,
		"body_timeout", s.l.cfg.BodyTimeout.D().String(), "api", ex.api)
	if ex.api {
		s.rejectWith(&http1.Error{Status: http.StatusRequestTimeout, Reason: "request body not completed within body_timeout"},
			netpoll.ReasonTimeout)
		return
	}
	s.l.g.m.protocolError(s.l.cfg.Name, "http_body_timeout")
	s.c.CloseWithReason(netpoll.ReasonTimeout)
}

// onClose fails a proxied body still streaming, so its backend call ends. It may run on
// the engine's timeout goroutine while a request task is in next, which recycles the
// exchange: the exchange is read under mu.
func (s *httpSession) onClose(netpoll.CloseReason) {
	var bs *bodyStream
	s.mu.Lock()
	if ex := s.ex; ex != nil && !ex.bodyDone {
		bs = ex.bs
	}
	s.mu.Unlock()
	if bs != nil {
		bs.Finish(io.ErrUnexpectedEOF)
	}
}

// bodyStreamHigh is how many bytes of a proxied request body may wait for the backend
// before the client's connection stops being read.
const bodyStreamHigh = 256 << 10

// streamQueueHigh is how many bytes of a streamed answer may wait in a connection's write
// queue before the copy from the backend waits for the client.
const streamQueueHigh = 256 << 10
