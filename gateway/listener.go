package gateway

import (
	"fmt"
	"net"
	"time"

	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/netpoll"
)

// listener is one front-door socket and the netpoll.Handler for its connections. The
// handler's methods only find the connection's session and pass the event on.
type listener struct {
	g    *Gateway
	cfg  config.Listener
	addr net.Addr
	m    *listenerMetrics

	mmtpLimits mmtp.Limits
	hellos     *paceLimiter // max_hello_rate; nil: no cap
	// httpLimits parse heads and bound a proxied body, which streams through and so may
	// be as large as a file upload; apiLimits bound an API request's body, which is
	// buffered for the filters and the backend mapping.
	httpLimits http1.Limits
	apiLimits  http1.Limits
}

// maxProxiedBody bounds a streamed request body; it only guards against a length that
// cannot be meant.
const maxProxiedBody = 1 << 40

func (g *Gateway) listen(lc *config.Listener) (*listener, error) {
	l := &listener{g: g, cfg: *lc, m: newListenerMetrics(g.set, lc.Name), hellos: newPaceLimiter(lc.MaxHelloRate)}
	l.mmtpLimits = mmtp.Limits{MaxHeaderBytes: lc.MaxHeaderBytes, MaxBodyBytes: lc.MaxBodyBytes, MaxEntries: lc.MaxHeaderEntries}
	l.httpLimits = http1.Limits{MaxHeadBytes: lc.MaxHeaderBytes, MaxBodyBytes: maxProxiedBody}
	l.apiLimits = http1.Limits{MaxHeadBytes: lc.MaxHeaderBytes, MaxBodyBytes: int64(lc.MaxBodyBytes)}
	addr, err := g.engine.Listen(lc.Name, lc.Listen, l, netpoll.ListenerOptions{
		ReusePort: lc.ReusePort, MaxConns: lc.MaxConns,
		IdleTimeout: lc.HandshakeTimeout.D(), PartialTimeout: lc.FrameTimeout.D(),
		WriteStallTimeout: lc.WriteStallTimeout.D(),
		InheritFD:         g.inheritedFor(lc.Name, lc.Listen),
		AcceptRate:        lc.MaxConnRate,
	})
	if err != nil {
		return nil, fmt.Errorf("listeners %q: listen %s: %w", lc.Name, lc.Listen, err)
	}
	l.addr = addr
	g.log.Info("listening", "listener", lc.Name, "protocol", lc.Protocol, "addr", addr.String(),
		"proxy_protocol", lc.ProxyProtocol, "engine", g.cfg.Engine)
	return l, nil
}

// OnOpen makes the connection's session. Until its first complete frame a connection lives
// under the handshake timeout (set as the listener's idle timeout); the session switches
// to the protocol's idle timeout once it has spoken.
func (l *listener) OnOpen(c netpoll.Conn) {
	l.m.accepted.Inc()
	l.m.open.Inc()
	var s session
	if l.cfg.Protocol == "http1" {
		s = newHTTPSession(l, c)
	} else {
		s = newMMTPSession(l, c)
	}
	s.base().born.Store(uint32(time.Now().Unix()))
	c.SetContext(s)
}

func (l *listener) OnData(c netpoll.Conn, data []byte) (int, error) {
	return c.Context().(session).onData(data)
}

func (l *listener) OnTimeout(c netpoll.Conn, kind netpoll.TimeoutKind) {
	s := c.Context().(session)
	if b := s.base(); b.migrating.Load() || (kind == netpoll.TimeoutPartial && b.helloSlot) {
		// Paused for a hot upgrade, or a HELLO waiting for its turn (max_hello_rate):
		// the wait is the gateway's, not the client's fault.
		return
	}
	s.onTimeout(kind)
}

func (l *listener) OnClose(c netpoll.Conn, reason netpoll.CloseReason) {
	l.m.open.Dec()
	if m := l.m.closed[reason]; m != nil {
		m.Inc()
	}
	if s, ok := c.Context().(session); ok {
		s.onClose(reason)
	}
}

// idleTimeout is how long a connection that has spoken may stay silent.
func (l *listener) idleTimeout() time.Duration { return l.cfg.IdleTimeout.D() }
