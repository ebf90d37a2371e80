package gateway

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/proxyproto"
	"github.com/mgw-project/mgw/netpoll"
	"github.com/mgw-project/mgw/push"
)

// session is the per-connection state of one protocol.
type session interface {
	onData(data []byte) (int, error)
	onTimeout(kind netpoll.TimeoutKind)
	onClose(reason netpoll.CloseReason)
	base() *sessionBase
}

// sessionBase is what every protocol's session holds: its listener and connection, the
// connection's identity, and the steps every protocol takes before its first frame.
type sessionBase struct {
	l *listener
	c netpoll.Conn

	// Touched only by the reactor's worker and onTimeout (the engine never runs onData
	// and onTimeout at once).
	needProxy bool
	spoken    bool
	helloSlot bool // a HELLO held at max_hello_rate has its turn (lifecycle.go)

	// migrating: a hot upgrade is moving the connection (upgrade_session.go); its
	// timeouts do nothing meanwhile.
	migrating atomic.Bool
	// born is when the connection opened (unix seconds; carried over a hot upgrade), for
	// max_connection_age; retired is set once it was told to go at that age.
	born    atomic.Uint32
	retired atomic.Bool

	mu sync.Mutex // guards proxied and ident, and the embedding session's shared fields
	// proxied and ident are the connection's codec.ConnInfo (connInfo) without the
	// listener name, which the listener holds once for all its connections, and without
	// the socket's peer, which the connection holds: proxied is the client a PROXY
	// header named (or a hot upgrade carried over), nil when it is the socket's peer. A
	// pointer, not an AddrPort, keeps the session in its size class (session_size_test.go).
	proxied *netip.AddrPort
	ident   identity // bound by a successful MMTP HELLO; "" otherwise
}

// newSessionBase starts a connection's session: its client is the socket's peer until a
// PROXY header (or a hot upgrade's state) says otherwise, and it has no HELLO yet.
func newSessionBase(l *listener, c netpoll.Conn) sessionBase {
	return sessionBase{l: l, c: c, needProxy: l.cfg.ProxyProtocol}
}

// setClientLocked records the connection's client address: nothing when it is the
// socket's own peer.
func (s *sessionBase) setClientLocked(ap netip.AddrPort) {
	if ap == s.c.RemoteAddrPort() {
		s.proxied = nil
		return
	}
	s.proxied = &ap
}

func (s *sessionBase) clientLocked() netip.AddrPort {
	if s.proxied != nil {
		return *s.proxied
	}
	return s.c.RemoteAddrPort()
}

// identity is a HELLO's app-id and device-id in one string: an idle connection keeps one
// allocation for both, and the push hub keys its map by one string header instead of
// two. Layout: len(app-id) in two bytes (big-endian), app-id, device-id. Two bytes are
// enough: an MMTP header value is at most 65535 bytes.
type identity string

// maxIdentityApp is the longest app-id an identity can hold.
const maxIdentityApp = 1<<16 - 1

// makeIdentity joins app and device; both empty make "". An app longer than
// maxIdentityApp (no MMTP header value is) makes "" too, which no connection is bound
// to; restore checks the length itself, since "" would also mean "no HELLO".
func makeIdentity(app, device string) identity {
	if app == "" && device == "" || len(app) > maxIdentityApp {
		return ""
	}
	var b strings.Builder
	b.Grow(2 + len(app) + len(device))
	b.WriteByte(byte(len(app) >> 8))
	b.WriteByte(byte(len(app)))
	b.WriteString(app)
	b.WriteString(device)
	return identity(b.String())
}

func (id identity) split() (app, device string) {
	if len(id) < 2 {
		return "", ""
	}
	n := 2 + (int(id[0])<<8 | int(id[1]))
	return string(id[2:n]), string(id[n:])
}

func (id identity) pushKey() push.Key {
	a, d := id.split()
	return push.Key{App: a, Device: d}
}

// readProxy consumes the PROXY header a listener with proxy_protocol requires before
// anything else, and makes its source the connection's client address. It returns how
// many bytes the header took and wait=true while it is incomplete (or once err is set).
// A connection without a valid header is not speaking the protocol yet, so it gets no
// GOAWAY or 400: the error closes it silently.
func (s *sessionBase) readProxy(data []byte) (n int, wait bool, err error) {
	if !s.needProxy {
		return 0, false, nil
	}
	h, n, err := proxyproto.Parse(data)
	if err != nil {
		s.l.g.m.protocolError(s.l.cfg.Name, "proxy_protocol")
		s.l.g.log.Debug("closing connection without a valid PROXY header", "listener", s.l.cfg.Name, "err", err)
		return len(data), true, err
	}
	if n == 0 {
		return 0, true, nil
	}
	if !h.Local {
		s.mu.Lock()
		s.setClientLocked(h.Source)
		s.mu.Unlock()
	}
	s.needProxy = false
	return n, false, nil
}

// spoke is called for each complete frame or request head: the first one moves the
// connection from the handshake timeout to the protocol's idle timeout.
func (s *sessionBase) spoke() {
	if !s.spoken {
		s.spoken = true
		s.c.SetIdleTimeout(s.l.idleTimeout())
	}
}

func (s *sessionBase) connInfo() codec.ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

func (s *sessionBase) infoLocked() codec.ConnInfo {
	app, device := s.ident.split()
	return codec.ConnInfo{Listener: s.l.cfg.Name, ClientAddr: s.clientLocked(), AppID: app, DeviceID: device}
}
