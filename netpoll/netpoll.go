// Package netpoll serves TCP connections without a goroutine per connection: an epoll
// reactor parks idle connections with a one-shot read registration and hands ready ones to
// a bounded goroutine pool. The rwloop engine (a read and a write goroutine per
// connection, on net.Conn) implements the same interfaces so the two can be compared by a
// single setting.
//
// The whole user-facing surface is Handler, Conn and Engine.
package netpoll

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Handler receives a connection's events. The engine calls OnData for one connection from
// at most one goroutine at a time, and never concurrently with OnOpen or OnClose for that
// connection. Handlers must not block for long in OnData: hand slow work to other
// goroutines and write the answer later with Conn.Write.
type Handler interface {
	// OnOpen is called once, before any OnData, on the goroutine that accepted or dialed.
	OnOpen(c Conn)
	// OnData receives the bytes available now: the unconsumed remainder of earlier calls
	// followed by what was just read. It returns how many bytes it consumed; the engine
	// keeps the rest (at most Config.MaxPending bytes, else the connection is closed with
	// ReasonPendingLimit) and presents them again with the next bytes. data is only valid
	// during the call. A non-nil error closes the connection with ReasonHandler.
	OnData(c Conn, data []byte) (consumed int, err error)
	// OnTimeout is called when the idle or partial-frame deadline of the connection passed.
	// The handler may write a last message (a GOAWAY) and must close the connection if it
	// wants it closed; the engine does not close it by itself.
	OnTimeout(c Conn, kind TimeoutKind)
	// OnClose is called exactly once, after the connection is closed, with the first reason
	// given.
	OnClose(c Conn, reason CloseReason)
}

// TimeoutKind says which deadline passed.
type TimeoutKind uint8

const (
	// TimeoutIdle: no bytes arrived for Config.IdleTimeout.
	TimeoutIdle TimeoutKind = iota + 1
	// TimeoutPartial: an incomplete frame (pending bytes) waited for Config.PartialTimeout.
	TimeoutPartial
)

func (k TimeoutKind) String() string {
	switch k {
	case TimeoutIdle:
		return "idle"
	case TimeoutPartial:
		return "partial"
	}
	return "unknown"
}

// CloseReason says why a connection closed. It is a small fixed set so metrics can count
// closes by reason without per-connection series.
type CloseReason uint8

const (
	ReasonNone          CloseReason = iota
	ReasonLocal                     // Close called by the handler or the gateway
	ReasonPeerEOF                   // the peer half-closed or closed (read returned 0 / RDHUP)
	ReasonPeerReset                 // ECONNRESET, EPIPE
	ReasonReadError                 // another read error
	ReasonWriteError                // another write error
	ReasonWriteLimit                // queued write bytes passed the hard limit: a slow reader
	ReasonPendingLimit              // an incomplete frame exceeded Config.MaxPending
	ReasonHandler                   // OnData returned an error
	ReasonTimeout                   // closed after OnTimeout
	ReasonShutdown                  // the engine is shutting down
	ReasonWriteStall                // queued write bytes made no progress for the write stall timeout
	ReasonQueuedBudget              // the engine's queued write bytes passed Config.QueuedBudget; this was among the largest queues
	ReasonPendingBudget             // the engine's pending bytes passed Config.PendingBudget; this was among the largest incomplete frames
	ReasonMigrated                  // handed to another process (hot upgrade): only this process's descriptor closed, the socket lives on
	numReasons
)

var reasonNames = [...]string{"none", "local", "peer_eof", "peer_reset", "read_error",
	"write_error", "write_limit", "pending_limit", "handler", "timeout", "shutdown", "write_stall",
	"queued_budget", "pending_budget", "migrated"}

func (r CloseReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// AllCloseReasons lists every reason, for metrics registration.
func AllCloseReasons() []CloseReason {
	out := make([]CloseReason, 0, numReasons)
	for r := ReasonLocal; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// Conn is one connection. Every method is safe to call from any goroutine, any number of
// times, including after the connection closed (then writes return ErrClosed).
type Conn interface {
	// ID is unique for the life of the engine (unlike the fd, which the kernel reuses).
	ID() uint64
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// RemoteAddrPort is RemoteAddr without an allocation (an IPv4 peer is a 4-byte
	// address); the zero AddrPort when the peer's address is unknown.
	RemoteAddrPort() netip.AddrPort
	// Listener is the name given to Engine.Listen, or "" for a dialed connection.
	Listener() string
	// Write sends b as one message: bytes of concurrent Writes never interleave. It does not
	// block on a slow peer: what the socket does not take is copied to the write queue. When
	// the queue passes Config.WriteSoftLimit the engine stops reading this connection until
	// it drains below; past Config.WriteHardLimit the connection is closed with
	// ReasonWriteLimit. b may be reused by the caller once Write returns.
	Write(b []byte) error
	// Writev is Write of the concatenation of bufs, as one message.
	Writev(bufs ...[]byte) error
	// QueuedBytes is how many written bytes wait in this connection's queue now (0 once
	// closed). A producer streaming a large body can wait while it is above a threshold
	// instead of growing the queue to the hard limit.
	QueuedBytes() int
	// WaitWritable blocks until at most below bytes are queued (nil), the connection is
	// closed (ErrClosed) or ctx ends (its error).
	WaitWritable(ctx context.Context, below int) error
	// Close closes the connection with ReasonLocal.
	Close() error
	// CloseWithReason closes with the given reason; only the first reason counts.
	CloseWithReason(r CloseReason) error
	// CloseAfterFlush closes once the write queue has drained (or at once when it is empty),
	// so a last message (a GOAWAY, an HTTP response with Connection: close) reaches the peer.
	CloseAfterFlush(r CloseReason)
	// PauseRead stops delivering data (the connection is not re-armed for reading) until
	// ResumeRead; calls nest by count. It is how a handler caps in-flight requests.
	PauseRead()
	ResumeRead()
	// SetIdleTimeout changes this connection's idle timeout (OnTimeout(TimeoutIdle) after d
	// without incoming bytes); d <= 0 disables it. It starts as the listener's (or the
	// engine's) IdleTimeout. The epoll engine counts it in Config.TimerTick steps.
	SetIdleTimeout(d time.Duration)
	// Context and SetContext hold the handler's per-connection state.
	Context() any
	SetContext(v any)
	// Closed reports whether the connection is closed.
	Closed() bool
	// ReadyAt is when the engine saw ready the bytes that OnData is given: its wait for a
	// worker (the reactor's queue under load) is the time since. Meant for OnData; with
	// the epoll engine it is the poller's wake-up that found them (or, for bytes held back
	// by PauseRead or a memory budget, when reading resumed); with rwloop, the read's end.
	// now is the clock reading ready was worked out from: a caller that needs the time as
	// well (when it starts to serve them) spares a clock read per request. With
	// Config.RxTimestamps, ready is when the newest of the bytes read reached the socket.
	ReadyAt() (ready, now time.Time)
}

// ListenerOptions tune one listener.
type ListenerOptions struct {
	// ReusePort sets SO_REUSEPORT (SO_REUSEADDR is always set).
	ReusePort bool
	// MaxConns caps this listener's open connections; 0 means no cap beyond the engine's.
	// Above it, accepting pauses (the kernel backlog holds the rest) and the pause is counted.
	MaxConns int
	// Backlog for listen(2); 0 means the system's somaxconn.
	Backlog int
	// IdleTimeout and PartialTimeout override Config's for this listener's connections:
	// 0 keeps the engine's, negative disables.
	IdleTimeout    time.Duration
	PartialTimeout time.Duration
	// WriteStallTimeout overrides Config's: 0 keeps the engine's, negative disables.
	WriteStallTimeout time.Duration
	// InheritFD, when positive, is a listening socket inherited from another process (a hot
	// upgrade): the engine serves a duplicate of it instead of binding addr, so the socket
	// never stops accepting. The caller still owns InheritFD.
	InheritFD int
	// AcceptRate caps new connections accepted per second (a reconnect storm); the rest
	// wait in the kernel backlog and each pause is counted (Stats.AcceptThrottled). Bursts
	// of a tenth of a second's worth pass at once. 0 means no cap.
	AcceptRate int
}

// Engine serves listeners and dialed connections with one Handler per listener.
type Engine interface {
	// Listen starts accepting on addr ("127.0.0.1:0" picks a port) and returns the bound
	// address.
	Listen(name, addr string, h Handler, opts ListenerOptions) (net.Addr, error)
	// Dial connects to addr (optionally from laddr, "" for any) and serves the connection with
	// h, as the client side of the load-test harness does.
	Dial(ctx context.Context, addr, laddr string, h Handler) (Conn, error)
	// DialAsync starts connecting to addr and returns at once, so that a caller on a
	// worker need not wait (nor park a goroutine) for the handshake. An error it returns
	// is final. Otherwise done is called exactly once, never on the caller's goroutine:
	// with the connection, after its OnOpen, or with the error. timeout, when not 0,
	// bounds the connect; a connect that has ended waits for a worker like any ready
	// connection, so done must not block, and a worker must not wait for a dial
	// (Dial on a worker could wait for itself).
	DialAsync(addr string, timeout time.Duration, h Handler, done func(Conn, error)) error
	// StopAccepting closes every listener; open connections go on. It is the first step of a
	// graceful drain.
	StopAccepting()
	// Range calls f for each open connection until f returns false.
	Range(f func(Conn) bool)
	// Stats returns a snapshot of the engine's counters.
	Stats() Stats
	// Close stops accepting, closes every connection with ReasonShutdown, and releases the
	// engine's resources. It is safe to call more than once.
	Close() error
}

// Config configures an engine. Zero values take the defaults below.
type Config struct {
	// Kind is "epoll" (default) or "rwloop".
	Kind string
	// Pollers is the number of epoll loops; default runtime.GOMAXPROCS(0).
	Pollers int
	// Workers bounds the goroutine pool that runs reads and handlers; default 32 * GOMAXPROCS.
	Workers int
	// MaxConns caps open connections across listeners; default 1<<20.
	MaxConns int
	// ReadPerEvent caps the bytes read per ready event before re-arming, for fairness;
	// default 64 KiB.
	ReadPerEvent int
	// MaxPending caps the unconsumed bytes kept for an incomplete frame; default 4 MiB + 80 KiB.
	MaxPending int
	// WriteSoftLimit and WriteHardLimit bound queued write bytes per connection; defaults
	// 1 MiB and 8 MiB.
	WriteSoftLimit int
	WriteHardLimit int
	// IdleTimeout: OnTimeout(TimeoutIdle) when no bytes arrived for this long; 0 disables.
	IdleTimeout time.Duration
	// PartialTimeout: OnTimeout(TimeoutPartial) when pending bytes waited this long; 0 disables.
	PartialTimeout time.Duration
	// WriteStallTimeout closes a connection with ReasonWriteStall when bytes wait in its
	// write queue and none of them reached the socket for this long: a peer that stopped
	// reading would otherwise hold its queue (up to WriteHardLimit) for as long as TCP
	// keeps the connection. The kernel takes bytes from a queue in batches as the peer
	// frees room in its socket buffer, so a reader far slower than that buffer per period
	// counts as stalled too. Default 30 s; negative disables. The epoll engine counts it
	// in TimerTick steps.
	WriteStallTimeout time.Duration
	// QueuedBudget and PendingBudget bound the sum over all connections of queued write
	// bytes and of incomplete-frame bytes: the per-connection limits alone let a few
	// hundred slow readers or half-sent frames take gigabytes. While a sum is over its
	// budget the epoll engine stops reading the connections that hold such bytes (they are
	// the ones growing it; the others go on), and each TimerTick the engine closes the
	// largest holders first, with ReasonQueuedBudget / ReasonPendingBudget, until the sum
	// is back under. Connections stopped meanwhile are served again once it is. The rwloop
	// engine only does the closing. 0 takes the default: a quarter of the Go memory limit
	// (GOMEMLIMIT / debug.SetMemoryLimit) each when one is set, else DefaultQueuedBudget /
	// DefaultPendingBudget; negative disables.
	QueuedBudget  int64
	PendingBudget int64
	// TimerTick is the timing wheel's resolution; default 1 s.
	TimerTick time.Duration
	// KeepAlive is the TCP keepalive period; default 60 s, negative disables.
	KeepAlive time.Duration
	// RxTimestamps makes ReadyAt's ready the kernel's receive time of the newest bytes of
	// the read (SO_TIMESTAMPNS), instead of the poller's wake-up that found them. It is for
	// a process that measures others and may itself be short of CPU (the load harness,
	// sharing a box with the gateway it loads): its wait for a CPU before the poller runs
	// is then not counted as the peer's latency. Each read is a recvmsg(2) with a control
	// message. Epoll engine only.
	RxTimestamps bool
}

// Stats is a snapshot of an engine's counters. Counters are engine-wide, never per
// connection, so exporting them costs the same at 10 or 100k connections.
type Stats struct {
	Open         int64 // connections open now
	Accepted     uint64
	Dialed       uint64
	AcceptPaused uint64 // times accepting paused at a connection cap
	Adopted      uint64 // connections taken over from another process (Migrator.Adopt)
	// AcceptThrottled counts times accepting paused at a listener's AcceptRate.
	AcceptThrottled uint64
	Closed          [numReasons]uint64
	Events          uint64 // ready events handled
	BytesIn         uint64
	BytesOut        uint64
	QueuedBytes     int64 // write bytes queued now, all connections
	PendingBytes    int64 // bytes of incomplete frames kept now, all connections
	PoolRunning     int   // workers busy now
	PoolWaiting     int   // ready connections waiting for a worker
	PoolCap         int
	Goroutines      int // runtime.NumGoroutine at the snapshot, for convenience
}

// ClosedBy returns the count of connections closed with reason r.
func (s *Stats) ClosedBy(r CloseReason) uint64 {
	if int(r) < len(s.Closed) {
		return s.Closed[r]
	}
	return 0
}
