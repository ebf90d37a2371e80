package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/proxyproto"
	"github.com/mgw-project/mgw/netpoll"
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

	mu   sync.Mutex // guards info, and the embedding session's shared fields
	info codec.ConnInfo
}

func newSessionBase(l *listener, c netpoll.Conn, info codec.ConnInfo) sessionBase {
	return sessionBase{l: l, c: c, info: info, needProxy: l.cfg.ProxyProtocol}
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
		s.info.ClientAddr = h.Source
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
	return s.info
}
