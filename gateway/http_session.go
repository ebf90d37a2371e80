package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/gateway/route"
	"github.com/mgw-project/mgw/gateway/upstream"
	"github.com/mgw-project/mgw/internal/pipe"
	"github.com/mgw-project/mgw/netpoll"
)

// httpSession is one HTTP/1.1 connection. Requests on it are answered in order: once a
// request is complete the session pauses reading, serves it, writes the answer, and
// resumes (the reactor then hands back any pipelined bytes it kept). An API request
// (POST /api/<op> or an Operation-Type header) buffers its body, bounded by the
// listener's limit, as does a plain proxied request with a short body; those are served
// with no goroutine waiting for the backend. A proxied request with a longer or chunked
// body streams it to the backend as it arrives, from a request task.
type httpSession struct {
	sessionBase

	// ex is the request being read and served; nil between requests. The reactor's
	// worker sets it; a request task clears it (next), under mu.
	ex *httpExchange

	// Guarded by mu:
	phase     httpState
	closeNext bool // drain: close after the current response
	holdNext  bool // a hot upgrade waits for this request's end: next keeps reads paused (hold)
	held      bool // a hot upgrade's pause is in effect: no request starts here (hold)

	// answerAPI is writeAPIAnswer as a func value, made at the connection's first API
	// call; only the reactor's worker touches the field.
	answerAPI func(*codec.Response)
}

// httpState is where a connection is in its current exchange. The reactor's worker moves
// it forward as bytes arrive; the request task moves it on once the answer is out (next).
type httpState uint8

const (
	httpIdle      httpState = iota // between requests: no exchange, nothing held
	httpHead                       // a request head is arriving
	httpBody                       // a body read whole before the request is served is arriving
	httpStreaming                  // a proxied request is served while its body streams to the backend
	httpServing                    // the request is whole; its answer is on its way; reads wait
	// httpLinger: a proxied request was answered before its body was all in. The reactor
	// reads the rest and drops it, then closes: closing at once would reset a client
	// still sending before it read the answer.
	httpLinger
)

// readingBody says whether body bytes are still expected in state st.
func (st httpState) readingBody() bool {
	return st == httpBody || st == httpStreaming || st == httpLinger
}

// maxLingerBytes bounds the body bytes dropped after an early answer before the
// connection is closed anyway.
const maxLingerBytes = 16 << 20

// httpExchange is the state of one request while it is read. It lives only from the
// first byte of a request to its response, so an idle keep-alive connection holds none.
type httpExchange struct {
	head http1.RequestHead
	body http1.BodyDecoder
	// sink is where the decoded body goes, chosen by begin: &whole for an API call or a
	// short proxied body, served once it is all in, or &proxied for a body that streams.
	sink    bodySink
	whole   wholeBody
	proxied proxyBody
	dropped dropBody
	api     bool // an API call, not a proxied request
	final   bool // the gateway answers it itself once its body is in (finalRecipient)
	// bodyBy is when the body must be all in (the listener's body_timeout after the end
	// of the head); zero without a body or a timeout.
	bodyBy time.Time
}

// buffered says the request is served once its body is all in.
func (ex *httpExchange) buffered() bool { return ex.sink == &ex.whole || ex.final }

// reset readies a served exchange for the pool.
func (ex *httpExchange) reset() {
	ex.sink, ex.whole, ex.proxied, ex.api, ex.final, ex.bodyBy = nil, wholeBody{}, proxyBody{}, false, false, time.Time{}
}

// bodySink takes a request's decoded body as it arrives.
type bodySink interface {
	// take adds a piece of body; it returns how many bytes were dropped so far because
	// nobody reads them any more.
	take(chunk []byte) (dropped int64)
}

// wholeBody buffers a body the request is served with whole: an API call needs it so
// (signature, MMTP-style call); a short proxied one then goes out with its head in one
// write.
type wholeBody struct{ buf []byte }

func (a *wholeBody) take(chunk []byte) int64 {
	a.buf = append(a.buf, chunk...)
	return 0
}

// dropBody reads a body nobody will use: a request the gateway answers itself.
type dropBody struct{}

func (dropBody) take([]byte) int64 { return 0 }

// proxyBody streams a proxied body to the backend through a pipe.Pipe.
type proxyBody struct {
	bs *pipe.Pipe
	// discard: the backend side stopped reading the body (it answered, or its call
	// ended); the rest is read and dropped.
	discard bool
	dropped int64
}

func (p *proxyBody) take(chunk []byte) int64 {
	if !p.discard {
		if _, err := p.bs.Write(chunk); err != nil {
			// The backend side stopped reading: an answer is on its way (an error here
			// used to close the connection at once, losing it).
			p.discard = true
		}
	}
	if p.discard {
		p.dropped += int64(len(chunk))
	}
	return p.dropped
}

var exchangePool = sync.Pool{New: func() any { return &httpExchange{head: http1.RequestHead{ContentLength: -1}} }}

func newHTTPSession(l *listener, c netpoll.Conn) *httpSession {
	return &httpSession{sessionBase: newSessionBase(l, c)}
}

func (s *httpSession) now() httpState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase
}

// nowHeld is now, and whether a hot upgrade holds the connection (held).
func (s *httpSession) nowHeld() (httpState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase, s.held
}

// enterBody moves to a state that reads a body. A hot upgrade's hold that paused reads
// while this request's head was being parsed moves to the request's end (holdNext): the
// body must be read for the request to finish.
func (s *httpSession) enterBody(st httpState) {
	s.mu.Lock()
	s.phase = st
	resume := s.held
	if resume {
		s.held, s.holdNext = false, true
	}
	s.mu.Unlock()
	if resume {
		s.c.ResumeRead()
	}
}

func (s *httpSession) enter(st httpState) {
	s.mu.Lock()
	s.phase = st
	s.mu.Unlock()
}

func (s *httpSession) onData(data []byte) (int, error) {
	off, wait, err := s.readProxy(data)
	if wait {
		return off, err
	}
	for off < len(data) {
		switch st, held := s.nowHeld(); {
		case st == httpServing:
			return off, nil // pipelined bytes wait in the reactor until this answer is out
		case held && (st == httpIdle || st == httpHead):
			// A hot upgrade holds the connection: the next request starts in the new
			// process, from these bytes (they move as pending). A request answered on
			// this worker just now (a refusal) must not be followed by one here.
			return off, nil
		case st == httpIdle:
			ex := exchangePool.Get().(*httpExchange)
			ex.head.Reset()
			s.mu.Lock()
			s.ex, s.phase = ex, httpHead
			s.mu.Unlock()
		case st == httpHead:
			n, err := http1.ParseHead(data[off:], &s.l.httpLimits, &s.ex.head)
			if err != nil {
				s.rejectHead(s.ex, data[off:], err)
				return len(data), nil
			}
			if n == 0 {
				return off, nil
			}
			off += n
			s.spoke()
			// Once begun, the request may be answered and its exchange recycled at any
			// moment: the loop looks at the state again, never at ex.
			if err := s.begin(s.ex, len(data)-off); err != nil {
				s.rejectReq(s.ex, err)
				return len(data), nil
			}
		default: // the body
			n, more := s.readBody(st, data[off:])
			off += n
			if !more {
				return off, nil
			}
		}
	}
	return off, nil
}

// readBody decodes body bytes from b in state st (readingBody). It returns how much it
// consumed, and whether onData should go on with the rest (false: wait for more bytes, or
// the connection is closing).
func (s *httpSession) readBody(st httpState, b []byte) (int, bool) {
	ex := s.ex
	if !ex.bodyBy.IsZero() && !time.Now().Before(ex.bodyBy) {
		s.bodyLate(ex)
		return len(b), false
	}
	chunk, n, done, err := ex.body.Decode(b)
	if err != nil {
		if st == httpStreaming || st == httpLinger {
			ex.proxied.bs.Finish(err)
		}
		if st == httpLinger {
			s.c.CloseWithReason(netpoll.ReasonHandler) // no 400 behind the answer
		} else {
			s.rejectReq(ex, err)
		}
		return len(b), false
	}
	if done {
		if !s.bodyDone(ex, chunk) {
			return len(b), false
		}
		return n, true
	}
	if len(chunk) > 0 && ex.sink.take(chunk) > maxLingerBytes && st == httpLinger {
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
		return len(b), false
	}
	if n == 0 {
		s.aimBodyClock(ex)
		return 0, false
	}
	return n, true
}

// bodyDone takes a request's last body bytes. An API call runs now. A proxied body ends
// its stream: the request counts as whole before those bytes reach the backend, since a
// backend that knows the length may answer as soon as it has them (marked after, that
// answer found the body unfinished and closed the connection with pipelined requests
// behind it unanswered). It returns false when the connection is closing. Once the
// request is whole, its answer may be written and ex recycled (next) at any moment: what
// is needed of it is read before.
func (s *httpSession) bodyDone(ex *httpExchange, last []byte) bool {
	s.bodyIn(ex)
	// Pause before the request counts as whole: next's ResumeRead must find the pause to
	// undo.
	s.c.PauseRead()
	if ex.final {
		s.enter(httpServing)
		s.writeWhole(ex.head.Minor, finalRecipient(ex.head.Method), ex.head.KeepAlive, false)
		return true
	}
	if ex.buffered() {
		ex.whole.take(last)
		s.enter(httpServing)
		if ex.api {
			s.runAPI(ex)
		} else {
			s.forward(ex, ex.whole.buf)
		}
		return true
	}
	p := ex.proxied
	s.mu.Lock()
	lingering := s.phase == httpLinger
	if !lingering {
		s.phase = httpServing
	}
	s.mu.Unlock()
	if lingering {
		// The answer went out before the body; now it is all in, close.
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
		return false
	}
	if len(last) > 0 && !p.discard {
		// An error means the backend side stopped reading: its answer is on its way,
		// and next finds the body done and keeps the connection.
		_, _ = p.bs.Write(last)
	}
	p.bs.Finish(nil)
	return true
}

// begin starts serving a request whose head is complete: an API call once its body is in,
// a proxied request at once with its body streaming behind it. avail is how many bytes
// after the head this read brought.
func (s *httpSession) begin(ex *httpExchange, avail int) error {
	h := &ex.head
	api := http1.IsAPIRequest(h)
	if api {
		// An operation no API route takes goes to a path route that takes its path, as
		// a plain request.
		if t := s.l.g.snap.Load().table; t.APIsMayGoByPath() {
			api = !t.APIByPath(http1.Operation(h), h.Target)
		}
	}
	hasBody := h.HasBody()
	if hasBody {
		// Over its limit, a body is refused before it is sent for (no 100 Continue: RFC
		// 9110 10.1.1 has a final status go at once when the head decides it) or read.
		lim, whose := s.bodyLimit(h, api)
		if h.ContentLength > lim.MaxBodyBytes {
			return &http1.Error{Status: http.StatusRequestEntityTooLarge,
				Reason: "Content-Length " + itoa(int(h.ContentLength)) + " over the " + whose + " body limit of " + itoa(int(lim.MaxBodyBytes)) + " bytes"}
		}
		ex.body.Reset(h, &lim)
		// A body this read brought whole needs no clock (nor the clock reads and timer
		// changes that aiming it costs every request).
		if d := s.l.cfg.BodyTimeout.D(); d > 0 && (h.Chunked || h.ContentLength > int64(avail)) {
			ex.bodyBy = time.Now().Add(d)
			s.aimBodyClock(ex)
		}
		if h.ExpectContinue {
			s.c.Write(http1.Append100Continue(nil))
		}
	}
	ex.api = api
	switch {
	case !api && hasBody && (lastHop(h) || http1.AsteriskForm(h)):
		// Answered by the gateway (below), but only once the body is read and dropped:
		// the next request on the connection starts where it ends (bodyDone).
		ex.final = true
		ex.sink = &ex.dropped
		s.enterBody(httpBody)
	case hasBody && (api || !h.Chunked && h.ContentLength <= maxWholeProxyBody):
		ex.sink = &ex.whole
		s.enterBody(httpBody)
	case api:
		ex.sink = &ex.whole
		s.c.PauseRead()
		s.enter(httpServing)
		s.runAPI(ex)
	case hasBody:
		ex.proxied = proxyBody{bs: pipe.New(s.c, bodyStreamHigh)}
		ex.sink = &ex.proxied
		s.enterBody(httpStreaming)
		s.proxy(ex, ex.proxied.bs)
	case lastHop(h) || http1.AsteriskForm(h):
		// Max-Forwards: 0 on OPTIONS or TRACE: the gateway must answer as the final
		// recipient, not forward (RFC 9110 7.6.2). OPTIONS * asks about the server itself
		// (RFC 9110 9.3.7), which no path route names.
		ex.sink = &ex.proxied
		s.c.PauseRead()
		s.enter(httpServing)
		s.writeWhole(h.Minor, finalRecipient(h.Method), h.KeepAlive, false)
	default:
		ex.sink = &ex.proxied
		s.c.PauseRead()
		s.enter(httpServing)
		s.forward(ex, nil)
	}
	return nil
}

// bodyLimit is how much body the request may carry, and whose limit that is: its route's
// max_body_bytes where that is lower, else the listener's for an API call (buffered for the
// filters and the backend mapping), while a proxied body streams through, bounded only by
// its route's.
func (s *httpSession) bodyLimit(h *http1.RequestHead, api bool) (http1.Limits, string) {
	lim, whose := s.l.httpLimits, "proxied"
	if api {
		lim, whose = s.l.apiLimits, "API"
	}
	table := s.l.g.snap.Load().table
	if !table.HasBodyLimits() {
		return lim, whose // the usual case: no second route lookup per request
	}
	var rt *route.Route
	if api {
		rt = table.Match(http1.Operation(h))
	} else {
		path, _, _ := strings.Cut(http1.OriginForm(h), "?")
		rt = table.MatchPath(path)
	}
	if rt != nil {
		if m := int64(rt.Config().MaxBodyBytes); m > 0 && m < lim.MaxBodyBytes {
			lim.MaxBodyBytes, whose = m, "route's"
		}
	}
	return lim, whose
}

// maxWholeProxyBody is the longest proxied request body read whole before the request is
// forwarded (as nginx buffers bodies); a longer one streams to the backend as it comes.
const maxWholeProxyBody = 16 << 10

// lastHop reports an OPTIONS or TRACE whose Max-Forwards is 0 (RFC 9110 7.6.2).
func lastHop(h *http1.RequestHead) bool {
	if h.Method != http.MethodOptions && h.Method != http.MethodTrace {
		return false
	}
	v, ok := h.Header.Get("max-forwards")
	return ok && strings.Trim(v, "0") == "" && v != ""
}

// allowedMethods is what the gateway forwards on a path route: any method; these are the
// ones RFC 9110 defines that a backend may serve.
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// finalRecipient is the gateway's own answer to a request it must not forward: OPTIONS is
// answered with what may be asked of it; TRACE, which would reflect the request (and any
// credentials in it) back, is not supported.
func finalRecipient(method string) *codec.Response {
	allow := codec.Field{Key: "allow", Value: allowedMethods}
	if method == http.MethodOptions {
		return &codec.Response{Status: http.StatusOK, Header: codec.Header{allow}}
	}
	resp := codec.ErrorResponse(http.StatusMethodNotAllowed, codec.ErrBadRequest, "TRACE is not supported")
	resp.Header = append(resp.Header, allow)
	return resp
}

func (s *httpSession) runAPI(ex *httpExchange) {
	req := http1.ToRequest(&ex.head, ex.whole.buf, s.connInfo())
	g := s.l.g
	s.stamp(req)
	ex.whole.buf = nil // the request owns it now
	if s.answerAPI == nil {
		s.answerAPI = s.writeAPIAnswer // one func value per connection, not one per call
	}
	answer := s.answerAPI
	// Admission before work, on the reactor worker; requests on one connection are
	// served one at a time, so it holds none when this one comes.
	if r := g.adm.admit(0); r != admitted {
		answer(g.adm.answers[r])
		return
	}
	g.callAPI(req, answer, g.adm.idleFn)
}

// stamp sets when req's bytes were ready: its wait for a worker counts (readEvent says
// why). Served inline, it starts now (admission.started), and the clock read that gave
// the one gives the other (a request served as a task starts when the task does: submit).
func (s *httpSession) stamp(req *codec.Request) {
	ready, now := s.c.ReadyAt()
	req.Received = ready
	if s.l.g.inline {
		req.Started = now
	}
}

// writeAPIAnswer writes the answer to the API call being served (runAPI). The exchange
// stays the session's until the answer is written (next recycles it).
func (s *httpSession) writeAPIAnswer(resp *codec.Response) {
	s.mu.Lock()
	h := &s.ex.head
	s.mu.Unlock()
	s.writeWhole(h.Minor, resp, h.KeepAlive, h.Method == http.MethodHead)
}

// proxyAnswer is how a proxied request's answer goes out: the gateway's own, whole, or
// the backend's, whole or streamed. Once the backend's has started out, a gateway answer
// (a panic's 500) can only reach the client as a close.
type proxyAnswer struct {
	s          *httpSession
	minor      int
	keep, head bool
	started    atomic.Bool
	// final is set, under mu, as the final answer (the backend's or the gateway's) begins:
	// an interim answer is written under mu only before, so none follows it.
	mu    sync.Mutex
	final bool
	// body is a request body still streaming in (proxy), nil when it was whole. The
	// exchange is over once answered: nobody is left to read the rest (the transport need
	// not close a body it stopped sending). Abandoning it resumes reads it held and lets
	// the reactor drop the rest.
	body *pipe.Pipe
}

// admitProxied decodes a proxied request and admits it; nil when it was refused (and
// answered).
func (s *httpSession) admitProxied(ex *httpExchange, body *pipe.Pipe) (*codec.Request, *proxyAnswer) {
	p := &proxyAnswer{s: s, minor: ex.head.Minor, keep: ex.head.KeepAlive, head: ex.head.Method == http.MethodHead, body: body}
	req := http1.ToRequest(&ex.head, nil, s.connInfo())
	s.stamp(req)
	if r := s.l.g.adm.admit(0); r != admitted {
		p.gateway(s.l.g.adm.answers[r])
		return nil, nil
	}
	return req, p
}

// interimHook is what hears the backend's interim answers: nil for an HTTP/1.0 client,
// which must get none (RFC 9110 15.2).
func (p *proxyAnswer) interimHook() upstream.Interim {
	if p.minor == 0 {
		return nil // an untyped nil: the upstream side tests for one
	}
	return p
}

// Interim writes a backend's interim (1xx) answer, as RFC 9110 15.2 has a proxy forward
// it, unless the final answer has begun. header is the backend's end-to-end fields.
func (p *proxyAnswer) Interim(status int, header codec.Header) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.final {
		return
	}
	b := bytebufferpool.Get()
	// 1xx: no framing, no Date; keep-alive so no Connection field is added.
	b.B = http1.AppendResponseHead(b.B[:0], 1, status, header, -1, true)
	_ = p.s.c.Write(b.B) // a closed connection is the final answer's to see
	bytebufferpool.Put(b)
}

// finalBegins ends the time for interim answers.
func (p *proxyAnswer) finalBegins() {
	p.mu.Lock()
	p.final = true
	p.mu.Unlock()
}

// gateway writes the gateway's own answer.
func (p *proxyAnswer) gateway(resp *codec.Response) {
	p.finalBegins()
	p.endBody()
	if p.started.Load() {
		p.s.c.CloseWithReason(netpoll.ReasonHandler)
		return
	}
	p.s.writeWhole(p.minor, resp, p.keep, p.head)
}

// backend writes the backend's answer: in one write when it came whole, else copied as
// it arrives, waiting for the client (writeStream).
func (p *proxyAnswer) backend(resp *upstream.ProxyResponse) {
	p.finalBegins()
	p.started.Store(true)
	if resp.Body == nil {
		p.s.writeProxied(p.minor, resp, p.keep, p.head)
	} else {
		p.s.writeStream(p.minor, resp, p.keep, p.head)
	}
	p.endBody()
}

func (p *proxyAnswer) endBody() {
	if p.body != nil {
		p.body.Abandon(errAnswered)
	}
}

// proxy serves a proxied request whose body streams in (body) as a request task, on the
// blocking client (Gateway.proxy).
func (s *httpSession) proxy(ex *httpExchange, body *pipe.Pipe) {
	length := ex.head.ContentLength
	if ex.head.Chunked {
		length = -1
	}
	req, p := s.admitProxied(ex, body)
	if req == nil {
		return
	}
	g := s.l.g
	g.submit(req, func(reply func(*codec.Response)) {
		resp, ans := g.proxy(context.Background(), req, body, length, p.interimHook())
		if ans != nil {
			reply(ans)
			return
		}
		p.backend(resp)
		reply(nil)
	}, p.gateway, g.adm.idleFn)
}

var errAnswered = errors.New("answered before the request body was read")

// forward serves a proxied request whose body is whole (or absent) with no goroutine
// waiting for the backend (Gateway.forwardAsync). An answer that came whole is written by
// the reactor worker that read it; a streamed one is copied to the client by a request
// task, which waits for the client as writeStream does.
func (s *httpSession) forward(ex *httpExchange, body []byte) {
	ex.whole.buf = nil // the call owns it now
	req, p := s.admitProxied(ex, nil)
	if req == nil {
		return
	}
	g := s.l.g
	g.serveAdmitted(req, func(reply func(*codec.Response)) {
		g.forwardAsync(req, body, p.interimHook(), func(resp *upstream.ProxyResponse, ans *codec.Response) {
			switch {
			case ans != nil:
				reply(ans)
			case resp.Body == nil:
				p.backend(resp)
				reply(nil)
			default:
				err := g.reqPool.Submit(func() {
					defer g.recoverRequest(req, reply)
					p.backend(resp)
					reply(nil)
				})
				if err != nil {
					resp.Body.Close()
					g.adm.refuse(refusedPool)
					reply(g.adm.answers[refusedPool])
				}
			}
		})
	}, p.gateway, g.adm.idleFn)
}

// writeProxied writes a backend's answer that came whole, head and body in one write.
// Its length is known now, so it goes with Content-Length even where the backend chunked.
func (s *httpSession) writeProxied(minor int, resp *upstream.ProxyResponse, keep, headOnly bool) {
	length := resp.ContentLength
	withBody := !headOnly && bodyAllowed(resp.Status)
	if withBody {
		length = int64(len(resp.Whole))
	}
	keep = http1.ResponseKeepAlive(minor, resp.Status, length, keep && s.keepOpen())
	b := bytebufferpool.Get()
	b.B = http1.AppendResponseHead(b.B[:0], minor, resp.Status, resp.Header, length, keep)
	if withBody {
		b.B = append(b.B, resp.Whole...)
	}
	resp.ReleaseWhole() // copied
	err := s.c.Write(b.B)
	bytebufferpool.Put(b)
	s.next(keep && err == nil)
}

// writeWhole writes a complete response and readies the connection for the next request.
// The answer to HEAD (head) is the head alone: a body would be read as the next response.
func (s *httpSession) writeWhole(minor int, resp *codec.Response, keep, head bool) {
	keep = keep && s.keepOpen()
	b := bytebufferpool.Get()
	b.B = appendWhole(b.B[:0], minor, resp, keep, head)
	resp.ReleaseBody() // copied: the answer is b's now
	s.c.Write(b.B)
	bytebufferpool.Put(b)
	s.next(keep)
}

// appendWhole appends resp whole, or its head alone as the answer to HEAD (head).
func appendWhole(dst []byte, minor int, resp *codec.Response, keep, head bool) []byte {
	if head {
		return http1.AppendResponseHeadOnly(dst, minor, resp, keep)
	}
	return http1.AppendResponse(dst, minor, resp, keep)
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

// keepOpen says whether the connection may take another request after the answer being
// written: not while draining, nor when the answer goes out before the request's body is
// all in (next: the rest is read and dropped, then the connection closes), so the answer
// says Connection: close (RFC 9112 9.6) and a client does not pipeline behind it.
func (s *httpSession) keepOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closeNext && s.phase != httpStreaming
}

// next ends the current exchange: the connection closes, or reads the next request.
func (s *httpSession) next(keep bool) {
	s.mu.Lock()
	ex := s.ex
	if s.phase == httpStreaming {
		// Answered before the body was all in (reading goes on: a streamed body is
		// never paused): the reactor drops the rest and closes.
		s.phase = httpLinger
		s.mu.Unlock()
		return
	}
	if !keep || s.closeNext {
		s.mu.Unlock()
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
		return
	}
	s.ex, s.phase = nil, httpIdle
	hold := s.holdNext
	s.holdNext = false
	s.held = s.held || hold // the request's pause is the hold's from now on
	s.mu.Unlock()
	if ex != nil {
		ex.reset()
		exchangePool.Put(ex)
	}
	if !hold {
		s.c.ResumeRead()
	}
}

// reject answers a request the codec refused and closes the connection: after a framing
// error the next request's first byte is unknowable.
func (s *httpSession) reject(err error) { s.rejectAs(err, netpoll.ReasonHandler, false) }

// rejectReq is reject for a request whose head (or at least request line) ex holds: the
// refusal of a HEAD request carries no body (RFC 9110 9.3.2). Only for the goroutine that
// parses into ex, or once its head is complete.
func (s *httpSession) rejectReq(ex *httpExchange, err error) {
	s.rejectAs(err, netpoll.ReasonHandler, ex != nil && ex.head.Method == http.MethodHead)
}

// rejectHead is rejectReq for a head the codec refused. One refused before its method was
// taken (a version it does not serve, a target or head over the limits) is still a HEAD
// when its raw line says so, and its refusal carries no body either.
func (s *httpSession) rejectHead(ex *httpExchange, raw []byte, err error) {
	head := ex.head.Method == http.MethodHead ||
		ex.head.Method == "" && bytes.HasPrefix(bytes.TrimLeft(raw, "\r\n"), []byte("HEAD "))
	s.rejectAs(err, netpoll.ReasonHandler, head)
}

// rejectAs is reject closing with the given reason, with no body after the head when
// the request was HEAD.
func (s *httpSession) rejectAs(err error, why netpoll.CloseReason, head bool) {
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
	b.B = appendWhole(b.B[:0], 1, codec.ErrorResponse(status, code, reason), false, head)
	s.c.Write(b.B)
	bytebufferpool.Put(b)
	s.c.CloseAfterFlush(why)
}

func (s *httpSession) drain() {
	s.mu.Lock()
	s.closeNext = true
	busy := s.phase != httpIdle
	s.mu.Unlock()
	if !busy {
		s.c.CloseAfterFlush(netpoll.ReasonShutdown)
	}
}

func (s *httpSession) onTimeout(kind netpoll.TimeoutKind) {
	s.mu.Lock()
	st := s.phase
	// The exchange is recycled only once its body is done, which changes the state under mu.
	var reading *httpExchange
	if st.readingBody() && !s.ex.bodyBy.IsZero() {
		reading = s.ex
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
	if st == httpLinger {
		s.c.CloseWithReason(netpoll.ReasonTimeout) // the answer is out; no 408 behind it
		return
	}
	if st == httpStreaming || st == httpServing {
		// Bytes pending while an answer is produced are pipelined requests held back
		// until it is out, not a stalled head; and a 408 now would land in the middle of
		// that answer. A streamed body that stalls is bounded by the backend timeout.
		return
	}
	if (kind == netpoll.TimeoutPartial || st == httpHead) && !s.needProxy || st == httpBody {
		// A client that began a request and stalls: slow headers (the frame timeout, or
		// the idle or handshake timeout when it comes first: a head has begun either
		// way), or an API body that stops (its bytes are taken as they come, so only the
		// idle timeout sees it). Half a PROXY header gets no 408: its sender has not
		// reached HTTP.
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

// bodyLate ends a request whose body missed its deadline. A request whose body is read
// whole is not served before it is in, so it gets a 408. A streamed one is already at the backend
// and its answer may be on its way: the connection is closed, which also fails the body
// stream and so the backend call (onClose).
func (s *httpSession) bodyLate(ex *httpExchange) {
	s.l.g.log.Debug("request body not in by body_timeout", "listener", s.l.cfg.Name,
		"body_timeout", s.l.cfg.BodyTimeout.D().String(), "api", ex.api)
	if ex.buffered() {
		s.rejectAs(&http1.Error{Status: http.StatusRequestTimeout, Reason: "request body not completed within body_timeout"},
			netpoll.ReasonTimeout, ex.head.Method == http.MethodHead)
		return
	}
	s.l.g.m.protocolError(s.l.cfg.Name, "http_body_timeout")
	s.c.CloseWithReason(netpoll.ReasonTimeout)
}

// onClose fails a proxied body still streaming, so its backend call ends. It may run on
// the engine's timeout goroutine while a request task is in next, which recycles the
// exchange: the exchange is read under mu.
func (s *httpSession) onClose(netpoll.CloseReason) {
	var bs *pipe.Pipe
	s.mu.Lock()
	if st := s.phase; st == httpStreaming || st == httpLinger {
		bs = s.ex.proxied.bs
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
