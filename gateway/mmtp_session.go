package gateway

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/internal/clock"
	"github.com/mgw-project/mgw/netpoll"
)

// mmtpSession is one MMTP connection. The reactor calls onData from one worker at a time;
// requests run as their own pool tasks and answer through finish from any goroutine, so
// the fields that both touch are under mu. An idle session holds no map and no buffer.
type mmtpSession struct {
	sessionBase

	// Guarded by mu:
	hello     bool
	goingAway bool
	paused    bool
	streams   map[uint32]struct{} // requests in flight; nil when none
	answering int32               // answers taken out of streams and not yet written
	answerTop uint32              // the highest stream id among those; 0 when none
	backstop  *time.Timer         // after GOAWAY: closes if the answers never come
	push      *pushState          // after a HELLO naming a device (push.go); else nil
}

// readEvent is what the requests of one read event share. It lives on the reactor
// worker's stack for the event, not in the session, which an idle connection keeps
// (session_size_test.go).
//   - The 503s of the event go out in one write as it ends: under overload a read brings
//     many requests, and refusing each with its own write was most of the cost of
//     refusing.
//   - Their Received time is when the reactor saw the bytes ready (netpoll.Conn.ReadyAt),
//     read once per event: the wait for a worker is the queue an inline request waits
//     in, and what admission, the deadline check and the latency metrics must count.
//   - Served inline, the first starts with the clock read of ReadyAt (admission.started);
//     each later one after those before it, which its wait counts too: it reads the
//     monotonic clock only (clock.From).
type readEvent struct {
	b          *bytebufferpool.ByteBuffer
	ready, now time.Time
}

// stamp sets the Received (and, served inline, Started) time of one of the event's
// requests.
func (r *readEvent) stamp(req *codec.Request, c netpoll.Conn, inline bool) {
	first := r.ready.IsZero()
	if first {
		r.ready, r.now = c.ReadyAt()
	}
	req.Received = r.ready
	switch {
	case !inline:
	case first:
		req.Started = r.now
	default:
		req.Started = clock.From(r.now)
	}
}

func (r *readEvent) add(stream uint32, resp *codec.Response) {
	if r.b == nil {
		r.b = bytebufferpool.Get()
	}
	r.b.B = mmtp.AppendResponse(r.b.B, stream, resp)
	resp.ReleaseBody() // copied
}

func (r *readEvent) flush(c netpoll.Conn) {
	if b := r.b; b != nil {
		r.b = nil
		c.Write(b.B)
		bytebufferpool.Put(b)
	}
}

func newMMTPSession(l *listener, c netpoll.Conn) *mmtpSession {
	return &mmtpSession{sessionBase: newSessionBase(l, c)}
}

func (s *mmtpSession) onData(data []byte) (int, error) {
	var rf readEvent
	defer rf.flush(s.c)
	return s.readFrames(data, &rf)
}

func (s *mmtpSession) readFrames(data []byte, rf *readEvent) (int, error) {
	off, wait, err := s.readProxy(data)
	if wait {
		return off, err
	}
	s.mu.Lock()
	away := s.goingAway
	s.mu.Unlock()
	if away {
		return s.readAfterGoAway(data, off), nil
	}
	for off < len(data) {
		f, n, err := mmtp.Parse(data[off:], &s.l.mmtpLimits)
		if err == nil && n > 0 {
			err = mmtp.CheckClientFrame(&f)
		}
		if err != nil {
			s.protocolError(err, rf)
			return len(data), nil
		}
		if n == 0 {
			break
		}
		off += n
		s.spoke()
		switch f.Type {
		case mmtp.TypePing:
			s.write(func(b []byte) []byte { return mmtp.AppendPong(b, f.Body) })
		case mmtp.TypeHello:
			if s.holdHello() {
				return off - n, nil // over the listener's HELLO rate: it waits in the reactor
			}
			s.onHello(&f, rf)
		case mmtp.TypeRequest:
			if !s.onRequest(&f, rf) {
				return off, nil // at the in-flight cap: the rest waits in the reactor
			}
		case mmtp.TypePushAck:
			s.onPushAck(f.StreamID)
		}
		// PONG needs no answer.
	}
	return off, nil
}

// readAfterGoAway reads what a client sends after GOAWAY. Nothing more is taken
// (last-stream-id told the client so), but what comes is still read: bytes left unread in
// the socket when it closes make the kernel reset the connection, and a reset can destroy
// the GOAWAY and the answers still on their way to the client. PUSH_ACKs still count: a
// push the client acknowledged while the connection winds down is not sent again.
func (s *mmtpSession) readAfterGoAway(data []byte, off int) int {
	for off < len(data) {
		f, n, err := mmtp.Parse(data[off:], &s.l.mmtpLimits)
		if err != nil {
			return len(data) // unframed from here on: drop the rest
		}
		if n == 0 {
			return off // the rest of a frame is still coming
		}
		off += n
		if f.Type == mmtp.TypePushAck {
			s.onPushAck(f.StreamID)
		}
	}
	return off
}

// write encodes one frame into a pooled buffer and sends it whole.
func (s *mmtpSession) write(enc func([]byte) []byte) {
	b := bytebufferpool.Get()
	b.B = enc(b.B[:0])
	s.c.Write(b.B)
	bytebufferpool.Put(b)
}

func (s *mmtpSession) answer(stream uint32, r *codec.Response) {
	s.write(func(b []byte) []byte { return mmtp.AppendResponse(b, stream, r) })
	r.ReleaseBody() // copied
}

func (s *mmtpSession) protocolError(err error, rf *readEvent) {
	rf.flush(s.c) // answered before the GOAWAY that follows them
	reason := mmtp.GoAwayReason(err)
	s.l.g.m.protocolError(s.l.cfg.Name, reason)
	s.l.g.log.Debug("mmtp protocol error", "listener", s.l.cfg.Name, "client", s.clientAddr(), "err", err)
	// GOAWAY's last-stream-id promises an answer to every request accepted so far: the
	// close waits for the last of them (finish), bounded by goAway's backstop.
	if s.goAway(reason) {
		s.c.CloseAfterFlush(netpoll.ReasonHandler)
	}
}

func (s *mmtpSession) clientAddr() string { return s.connInfo().ClientAddr.String() }

// onHello binds the app and device to the connection once the gateway's auth accepts them.
func (s *mmtpSession) onHello(f *mmtp.Frame, rf *readEvent) {
	s.mu.Lock()
	info := s.infoLocked()
	s.mu.Unlock()
	req := mmtp.ToRequest(f, info)
	rf.stamp(req, s.c, false) // hello is served here, not admitted: nothing to start
	if resp := s.l.g.snap.Load().hello(req); resp != nil {
		s.answer(f.StreamID, resp)
		return
	}
	resume, bad := parsePushResume(f)
	if bad != nil {
		s.answer(f.StreamID, bad)
		return
	}
	s.mu.Lock()
	s.hello = true
	// Copied into one string: the values are slices of the HELLO's header copy, which an
	// idle connection should not keep alive for the sake of two short strings.
	s.ident = makeIdentity(req.Header.Value("app-id"), req.Header.Value("device-id"))
	s.mu.Unlock()
	ok := &codec.Response{Status: http.StatusOK}
	bind := s.pushHello(ok, resume)
	s.answer(f.StreamID, ok)
	bind()
}

// onRequest accepts one REQUEST and runs it as a pool task. It returns false when the
// connection reached its in-flight cap: reading is paused until a request finishes.
func (s *mmtpSession) onRequest(f *mmtp.Frame, rf *readEvent) bool {
	s.mu.Lock()
	if s.goingAway {
		// After GOAWAY the client knows from last-stream-id that this one was not taken.
		s.mu.Unlock()
		return true
	}
	if _, dup := s.streams[f.StreamID]; dup {
		s.mu.Unlock()
		s.answer(f.StreamID, codec.ErrorResponse(http.StatusBadRequest, codec.ErrBadRequest,
			"stream id "+itoa(int(f.StreamID))+" is already in flight on this connection"))
		return true
	}
	if reject := s.checkIdentity(f); reject != nil {
		s.mu.Unlock()
		s.answer(f.StreamID, reject)
		return true
	}
	if op, _ := f.Get("operation-type"); len(op) == 0 {
		// A malformed request is answered as such, also when the gateway is overloaded.
		s.mu.Unlock()
		s.answer(f.StreamID, codec.ErrorResponse(http.StatusBadRequest, codec.ErrBadRequest,
			"header operation-type is required and must not be empty"))
		return true
	}
	g := s.l.g
	// Admission before work, here on the reactor worker: a refused request costs its
	// decode and a 503, no task.
	if r := g.adm.admit(len(s.streams)); r != admitted {
		s.mu.Unlock()
		rf.add(f.StreamID, g.adm.answers[r])
		return true
	}
	if s.streams == nil {
		s.streams = make(map[uint32]struct{}, 4)
	}
	s.streams[f.StreamID] = struct{}{}
	full := len(s.streams) >= s.l.cfg.MaxInFlight
	if full {
		s.paused = true
		s.c.PauseRead()
	}
	info := s.infoLocked()
	s.mu.Unlock()

	req := mmtp.ToRequest(f, info)
	rf.stamp(req, s.c, g.inline)
	ensureTraceID(req)
	answer := func(resp *codec.Response) { s.finish(req.StreamID, resp) }
	g.callAPI(req, answer, nil)
	return !full
}

// checkIdentity applies the HELLO binding (mmtp.md): a REQUEST naming another app or
// device than its connection's HELLO, or any REQUEST before HELLO on a listener that
// requires one, is answered 401. Called under mu.
func (s *mmtpSession) checkIdentity(f *mmtp.Frame) *codec.Response {
	if !s.hello {
		if s.l.cfg.RequireHello {
			return s.l.g.snap.Load().helloRequired()
		}
		return nil
	}
	app, device := s.ident.split()
	if v, ok := f.Get("app-id"); ok && string(v) != app {
		return codec.ErrorResponse(http.StatusUnauthorized, codec.ErrUnauthorized, "app-id differs from this connection's HELLO")
	}
	if v, ok := f.Get("device-id"); ok && string(v) != device {
		return codec.ErrorResponse(http.StatusUnauthorized, codec.ErrUnauthorized, "device-id differs from this connection's HELLO")
	}
	return nil
}

// cutInFlight answers every request still in flight 503 unavailable: the drain's deadline
// passed, and the connection closes next. mmtp.md's GOAWAY promises an answer to every
// request accepted; a backend's answer that comes later finds its stream answered (finish).
func (s *mmtpSession) cutInFlight(resp *codec.Response) {
	s.mu.Lock()
	ids := make([]uint32, 0, len(s.streams))
	for id := range s.streams {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.finish(id, resp)
	}
}

// finish writes a request's response and releases its stream id; it resumes reading when
// the connection was at its cap, and closes a connection that is going away once its last
// request is answered.
// A stream already answered is left alone (a task that panicked after answering).
func (s *mmtpSession) finish(stream uint32, resp *codec.Response) {
	// The stream id is free before the answer goes out: a client may reuse it as soon as
	// it reads the answer. Until the answer is written it counts in answering, so a
	// GOAWAY does not close the connection in front of it.
	s.mu.Lock()
	if _, open := s.streams[stream]; !open {
		s.mu.Unlock()
		return
	}
	delete(s.streams, stream)
	if len(s.streams) == 0 {
		s.streams = nil // a map never shrinks: drop it so an idle connection holds none
		s.l.g.adm.connIdle()
	}
	s.answering++
	s.answerTop = max(s.answerTop, stream)
	s.mu.Unlock()
	s.answer(stream, resp)
	s.mu.Lock()
	if s.answering--; s.answering == 0 {
		s.answerTop = 0
	}
	resume := s.paused && !s.goingAway && len(s.streams) < s.l.cfg.MaxInFlight
	if resume {
		s.paused = false
	}
	done := s.goingAway && len(s.streams) == 0 && s.answering == 0
	if done && s.backstop != nil {
		s.backstop.Stop()
		s.backstop = nil
	}
	s.mu.Unlock()
	if resume {
		s.c.ResumeRead()
	}
	if done {
		s.c.CloseAfterFlush(netpoll.ReasonLocal)
	}
}

// goAway sends GOAWAY once, with the highest stream id of the requests it still owes an
// answer (0 when every accepted request has been answered); those are still answered. From
// then on what the client sends is read and dropped (onData), so reading resumes if the
// in-flight cap had paused it.
func (s *mmtpSession) goAway(reason string) (idle bool) {
	s.mu.Lock()
	if s.goingAway {
		s.mu.Unlock()
		return false
	}
	s.goingAway = true
	p := s.push
	// last-stream-id is "the highest request stream id the gateway accepted and will
	// still answer; 0 if none" (mmtp.md): not one answered already, whose id the client
	// may have reused for a request the gateway never saw.
	last, idle := s.answerTop, len(s.streams) == 0 && s.answering == 0
	for id := range s.streams {
		last = max(last, id)
	}
	resume := s.paused
	s.paused = false
	if !idle {
		// Each request is bounded by its route's timeout, so finish comes; this backstop
		// only keeps a gateway bug (a request that never ends) from holding the
		// connection open for good.
		s.backstop = time.AfterFunc(s.l.g.requestBound(), func() {
			s.l.g.log.Warn("mmtp: closing after GOAWAY with requests still unanswered", "listener", s.l.cfg.Name, "client", s.clientAddr())
			s.c.CloseWithReason(netpoll.ReasonTimeout)
		})
	}
	s.mu.Unlock()
	if p != nil {
		// No new pushes on a connection that is going: they wait for the next one. Unbound
		// before the GOAWAY is written, and after any pump that still saw it bound has
		// written its batch (under p.mu), so no PUSH follows the GOAWAY. Acks of those
		// already sent still count (readAfterGoAway).
		s.l.g.push.unbind(p)
		p.mu.Lock()
		p.mu.Unlock() //nolint:staticcheck // an empty critical section: waits out a pump
	}
	s.write(func(b []byte) []byte { return mmtp.AppendGoAway(b, last, reason) })
	if resume {
		s.c.ResumeRead()
	}
	return idle
}

// drainLinger is how long an MMTP connection with nothing in flight stays open after the
// drain's GOAWAY: long enough for the client to read it and stop sending. Closed at once,
// a request already on its way would be left unread, and the reset that an unread byte
// makes the kernel send can destroy the GOAWAY before the client reads it: the client
// could then not tell that its request was refused.
const drainLinger = 500 * time.Millisecond

// drain is the SIGTERM path: GOAWAY, then close once the last request is answered (an
// idle connection after drainLinger, reading and dropping what comes meanwhile).
func (s *mmtpSession) drain() {
	if s.goAway(mmtp.ReasonShutdown) {
		time.AfterFunc(drainLinger, func() { s.c.CloseAfterFlush(netpoll.ReasonShutdown) })
	}
}

// onTimeout ends a connection that stays silent or stalls mid-frame. A connection waiting
// for its own answers is not idle, and whole frames held back at the in-flight cap are not
// a stalled frame: both are left alone (the engine restarts the deadline). Otherwise
// GOAWAY, and the close comes once the requests in flight are answered, as GOAWAY's
// last-stream-id promises.
func (s *mmtpSession) onTimeout(kind netpoll.TimeoutKind) {
	if s.needProxy {
		// Still in the PROXY header: the peer has not reached MMTP, so no GOAWAY.
		s.c.CloseWithReason(netpoll.ReasonTimeout)
		return
	}
	s.mu.Lock()
	inFlight, paused := len(s.streams) > 0 || s.answering > 0, s.paused
	s.mu.Unlock()
	reason := mmtp.ReasonIdle
	if kind == netpoll.TimeoutPartial {
		if paused {
			return
		}
		reason = mmtp.ReasonTimeout
	} else if inFlight {
		return
	}
	if s.goAway(reason) {
		s.c.CloseAfterFlush(netpoll.ReasonTimeout)
	}
}

func (s *mmtpSession) onClose(netpoll.CloseReason) {
	s.pushClosed()
	s.mu.Lock()
	if s.backstop != nil {
		s.backstop.Stop()
		s.backstop = nil
	}
	s.mu.Unlock()
}

// ensureTraceID gives a request that has no trace-id one (mmtp.md, Request headers:
// "passed through; the gateway makes one when absent"), so the backend and the access
// log can follow it: 32 lowercase hex digits, the form of a W3C trace-id. The signature
// does not cover trace-id, so adding it changes no verdict.
func ensureTraceID(req *codec.Request) {
	if _, ok := req.Header.Get("trace-id"); ok {
		return
	}
	var id [32]byte
	const digits = "0123456789abcdef"
	for i, r := 0, rand.Uint64(); i < 16; i, r = i+1, r>>4 {
		id[i] = digits[r&15]
	}
	for i, r := 16, rand.Uint64(); i < 32; i, r = i+1, r>>4 {
		id[i] = digits[r&15]
	}
	req.Header = append(req.Header, codec.Field{Key: "trace-id", Value: string(id[:])})
}
