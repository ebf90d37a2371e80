package gateway

import (
	"net/netip"

	"github.com/mgw-project/mgw/netpoll"
)

// connState is what a connection carries to the new process on a hot upgrade, beside its
// socket. Only quiet connections move (nothing in flight, nothing being answered, nothing
// queued), so no request state travels: a request is answered by the process that read it.
type connState struct {
	Listener  string `json:"l"`
	Client    string `json:"a,omitempty"` // the client address, from the PROXY header when one came
	NeedProxy bool   `json:"np,omitempty"`
	Spoken    bool   `json:"s,omitempty"`
	Born      uint32 `json:"b,omitempty"` // when it opened, unix seconds: max_connection_age counts on
	// MMTP only:
	Hello    bool   `json:"h,omitempty"`
	AppID    string `json:"app,omitempty"`
	DeviceID string `json:"dev,omitempty"`
	// (An older mgw also wrote "last", the highest stream id it accepted; a GOAWAY names
	// only requests still owed an answer, and a connection hands over with none.)
	// Push: the device stays bound (restore), but its log does not travel. The in-memory
	// store is the process's own, so the new process starts every device in a new epoch,
	// as mmtp.md allows for "a restart with an in-memory store": a client sees the new
	// epoch on its next PUSH (or HELLO) and re-syncs. A fleet store (Redis) keeps the log.

	// Pending is the bytes read and not yet consumed (an incomplete frame or head, or
	// whole frames held back); the new process delivers them first.
	Pending []byte `json:"p,omitempty"`
}

func (s *mmtpSession) base() *sessionBase { return &s.sessionBase }
func (s *httpSession) base() *sessionBase { return &s.sessionBase }

// quiet says whether the MMTP session can move now: no request in flight or being
// answered, not going away, not held at its in-flight cap.
func (s *mmtpSession) quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams) == 0 && s.answering == 0 && !s.goingAway && !s.paused
}

// quiet says whether the HTTP session can move now: between requests (or with only part of
// a head read, which the new process parses again from the pending bytes), and not
// closing.
func (s *httpSession) quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return (s.phase == httpIdle || s.phase == httpHead) && !s.closeNext
}

// hold stops the MMTP session from reading for the handover: a half frame read so far
// moves with the socket (Pending), and requests in flight are answered meanwhile.
func (s *mmtpSession) hold() { s.c.PauseRead() }

// unhold undoes hold, for a connection that stays (a rollback, a busy one).
func (s *mmtpSession) unhold() { s.c.ResumeRead() }

// hold stops the HTTP session from reading for the handover. A request whose body is
// still arriving cannot move (its head was consumed, maybe sent to the backend), and it
// cannot finish here without the rest of its body: such a session keeps reading and holds
// at the end of the request instead (next keeps the pause the request took, so the
// connection is quiet between requests, with any pipelined bytes pending). While held, no
// request starts (onData); a body begun as the hold came moves the hold to the request's
// end (enterBody).
func (s *httpSession) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase.readingBody() {
		s.holdNext = true
		return
	}
	s.held = true
	s.c.PauseRead()
}

// unhold undoes hold, for a connection that stays (a rollback, a busy one).
func (s *httpSession) unhold() {
	s.mu.Lock()
	if s.holdNext {
		s.holdNext = false // the request's own pause is next's to undo again
		s.mu.Unlock()
		return
	}
	held := s.held
	s.held = false
	s.mu.Unlock()
	if held {
		s.c.ResumeRead() // and the bytes left pending are delivered again (onData)
	}
}

// state is the session's part of connState. The worker-only fields (needProxy, spoken)
// are read after a successful Export, which saw the connection unowned under its lock.
func (b *sessionBase) state() connState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := connState{Listener: b.l.cfg.Name, NeedProxy: b.needProxy, Spoken: b.spoken, Born: b.born.Load()}
	if ap := b.clientLocked(); ap.IsValid() {
		st.Client = ap.String()
	}
	return st
}

func (s *mmtpSession) state() connState {
	st := s.sessionBase.state()
	s.mu.Lock()
	st.AppID, st.DeviceID = s.ident.split()
	st.Hello = s.hello
	s.mu.Unlock()
	return st
}

func (s *httpSession) state() connState { return s.sessionBase.state() }

// restore gives an adopted connection's new session what its old one knew. It runs
// before the connection is resumed, so no worker touches the session yet.
func (b *sessionBase) restore(st *connState) {
	b.needProxy, b.spoken = st.NeedProxy, st.Spoken
	if st.Born != 0 {
		b.born.Store(st.Born)
	}
	if st.Spoken {
		b.c.SetIdleTimeout(b.l.idleTimeout())
	}
	if ap, err := netip.ParseAddrPort(st.Client); err == nil {
		b.mu.Lock()
		b.setClientLocked(ap)
		b.mu.Unlock()
	}
}

func (s *mmtpSession) restore(st *connState) {
	s.sessionBase.restore(st)
	// An app-id too long for an identity never passed a HELLO: the state is not one an
	// mgw wrote, so the connection is taken as one without a HELLO.
	hello := st.Hello && len(st.AppID) <= maxIdentityApp
	s.mu.Lock()
	s.hello = hello
	if hello {
		s.ident = makeIdentity(st.AppID, st.DeviceID)
	}
	id := s.ident
	s.mu.Unlock()
	if hello && st.DeviceID != "" {
		// Pushes published to the device from now on reach it here, as they did there.
		s.bindPush(&pushState{s: s, id: id})
	}
}

func (s *httpSession) restore(st *connState) { s.sessionBase.restore(st) }

// movable is what the upgrade needs of a session beyond the protocol's session interface.
type movable interface {
	base() *sessionBase
	quiet() bool
	hold()
	unhold()
	state() connState
	restore(st *connState)
}

var (
	_ movable = (*mmtpSession)(nil)
	_ movable = (*httpSession)(nil)
)

// sessionOf returns the connection's session, or nil for one that has none.
func sessionOf(c netpoll.Conn) movable {
	m, _ := c.Context().(movable)
	return m
}
