// Package client is the load generator's side of the wire: it holds many long connections
// to an MMTP or HTTP/1.1 target on the project's own reactor (netpoll), sends requests on
// them when the open-loop schedule says so, and records each answer's latency from the
// request's intended send time. A connection costs a small struct and its kernel socket,
// no goroutine, so one process holds as many as its open-file limit allows.
package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/netpoll"
)

// Config says what to send where. It is read-only once given to New.
type Config struct {
	Target   string // host:port
	Protocol string // "mmtp" or "http1"
	API      string // operation type, e.g. demo.echo
	Body     []byte
	// AppID and Secret, when Secret is set, sign every request (and the HELLO).
	AppID  string
	Secret string
	// Hello sends an MMTP HELLO on each new connection and counts it established only once
	// answered 200.
	Hello bool
	// Timeout is how long a request may wait for its answer before it counts as a timeout;
	// default 10 s.
	Timeout time.Duration
	// SourceAddrs, when set, are the local addresses connections bind to, connection i (by
	// global index) using SourceAddrs[i % len]: one source address reaches one target port
	// only as many times as there are ephemeral ports.
	SourceAddrs []netip.Addr
	// ConnOffset is the global index of this client's first connection (workers split N).
	ConnOffset int
	// DevicePrefix names devices: device-id is DevicePrefix + global index.
	DevicePrefix string
	// OKLatencyOnly records the latency of 2xx answers only: past capacity most answers
	// are instant refusals, which would hide what the answered callers waited.
	OKLatencyOnly bool
	// RxTimestamps says the engine reads with the kernel's receive stamps
	// (netpoll.Config.RxTimestamps): an answer then ends when it reached the socket, however
	// late the harness read it.
	RxTimestamps bool
	// Push, with MMTP and Hello, makes the connections devices that receive pushes and
	// enables Publish (push.go); OK then counts pushes processed, latency is publish to
	// receipt.
	Push *PushConfig
}

// Error kinds counted by the client. Statuses count as "status_NNN".
const (
	ErrConnect  = "connect"
	ErrTimeout  = "timeout"
	ErrClosed   = "conn_closed" // a connection closed under requests in flight, or by the peer
	ErrProtocol = "protocol"    // the target sent something that is not valid MMTP/HTTP
	ErrGoAway   = "goaway"      // the gateway sent GOAWAY
	// ErrLost: a request the gateway accepted (at or below its GOAWAY's last-stream-id)
	// whose connection closed without its answer. A gateway keeping its promise loses none.
	ErrLost = "lost"
	// ErrRefused: a request refused by GOAWAY on maxResends connections in a row.
	ErrRefused    = "refused"
	ErrWrite      = "write"         // writing the request failed
	ErrNoConn     = "no_connection" // the schedule fired while no connection was open
	ErrHelloRefus = "hello_refused"
)

// Client holds connections and counts their outcome. Its methods are safe for concurrent
// use; the netpoll engine calls the per-connection handlers on its own goroutines.
type Client struct {
	cfg  Config
	eng  netpoll.Engine
	rec  *hist.Recorder
	lim  time.Duration
	reqs requestMaker

	mu    sync.Mutex
	conns []*conn // by local index; nil when down

	open atomic.Int64
	sent atomic.Uint64
	ok   atomic.Uint64
	// resetAt is when the counters were last reset (unix ns): answers to requests
	// intended before it are not counted.
	resetAt atomic.Int64
	rr      atomic.Uint64
	// pings counts PINGs sent and not yet answered by a PONG.
	pings atomic.Int64
	// closedLoop: each answer sends the next request on its connection (closed.go).
	closedLoop atomic.Bool
	// refusalMax is the slowest 503 answer (ns); slowRefusals counts those over 10 ms.
	refusalMax   atomic.Int64
	slowRefusals atomic.Uint64
	// lateMax is the most a request went out after its intended time (ns): the harness's
	// own delay, which every latency from the intended time includes.
	lateMax atomic.Int64
	// sentRefusalMax and slowSentRefusals are refusalMax and slowRefusals counted from
	// when the request was written (MMTP): the gateway's and the network's share alone.
	sentRefusalMax   atomic.Int64
	slowSentRefusals atomic.Uint64
	// retried counts requests sent again because the gateway never took them: above a
	// GOAWAY's last-stream-id, or never written.
	retried atomic.Uint64

	errMu sync.Mutex
	errs  map[string]uint64

	// FireQueued's batch (batch.go); the schedule's goroutine only.
	pending []pendingConn
	spare   [][]time.Time

	push *pushState // nil unless Config.Push
}

// New returns a client that will hold up to n connections on eng and record latencies in
// rec. The engine must outlive the client.
func New(cfg Config, n int, eng netpoll.Engine, rec *hist.Recorder) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.DevicePrefix == "" {
		cfg.DevicePrefix = "lt-"
	}
	c := &Client{cfg: cfg, eng: eng, rec: rec, lim: cfg.Timeout, conns: make([]*conn, n), errs: map[string]uint64{}}
	switch cfg.Protocol {
	case "mmtp":
		c.reqs = &mmtpRequests{cfg: &c.cfg}
	case "http1", "http":
		c.reqs = newHTTPRequests(&c.cfg)
	default:
		return nil, fmt.Errorf("protocol %q: want mmtp or http1", cfg.Protocol)
	}
	if cfg.API == "" {
		return nil, errors.New("api: empty operation type")
	}
	if cfg.Push != nil {
		if cfg.Protocol != "mmtp" || !cfg.Hello {
			return nil, errors.New("push: needs protocol mmtp with HELLO (push is addressed to a HELLO's device)")
		}
		c.push = newPushState(n, cfg.Timeout)
	}
	return c, nil
}

// Size is the number of connection slots.
func (c *Client) Size() int { return len(c.conns) }

// countErr adds one to error kind k.
func (c *Client) countErr(k string, n uint64) {
	if n == 0 {
		return
	}
	c.errMu.Lock()
	c.errs[k] += n
	c.errMu.Unlock()
}

func statusKind(st int) string { return "status_" + strconv.Itoa(st) }

// laddr returns the local address for global connection index g, or "".
func (c *Client) laddr(g int) string {
	if len(c.cfg.SourceAddrs) == 0 {
		return ""
	}
	return netip.AddrPortFrom(c.cfg.SourceAddrs[g%len(c.cfg.SourceAddrs)], 0).String()
}

// Dial opens connection slot i (replacing nothing: the slot must be empty). It returns once
// the connection is established (and, with Hello, greeted) or failed; failures are counted.
func (c *Client) Dial(ctx context.Context, i int) error {
	g := c.cfg.ConnOffset + i
	cn := &conn{cl: c, idx: i, device: c.deviceID(i), inflight: map[uint32]sent{}}
	if c.cfg.Hello && c.cfg.Protocol == "mmtp" {
		cn.helloCh = make(chan int, 1)
	}
	nc, err := c.eng.Dial(ctx, c.cfg.Target, c.laddr(g), cn)
	if err != nil {
		c.countErr(ErrConnect, 1)
		return err
	}
	if cn.helloCh != nil {
		if err := cn.hello(ctx, nc); err != nil {
			nc.Close()
			return err
		}
	} else if c.cfg.Protocol == "mmtp" {
		// A gateway closes a connection whose first frame does not come within its handshake
		// timeout; a real app says something at once, so this one does too. Its PONG is
		// recognised by the payload and not counted.
		_ = nc.Write(appendPing(nil, openPing[:]))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn.closed.Load() {
		// Closed while greeting (a push device that crashed on a push right behind the
		// HELLO's answer): registering it would leave its slot taken by a dead connection.
		return errors.New("connection closed during HELLO")
	}
	c.conns[i] = cn
	// Under c.mu, so that an OnClose racing this (dropped takes c.mu first) sees it live.
	c.open.Add(1)
	cn.live.Store(true)
	return nil
}

// Ramp dials every empty slot, starting at most perSecond a second (0 means as fast as
// concurrency allows) with up to 256 dials in flight, and calls progress (may be nil) about
// every 100 ms with the connections open. It returns when every slot was tried, or ctx ends.
// Failures are counted, not returned: the report shows how many connections were held.
func (c *Client) Ramp(ctx context.Context, perSecond float64, progress func(open int)) {
	const inFlight = 256
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	start := time.Now()
	lastProg := start
	k := 0
	for i := range c.conns {
		c.mu.Lock()
		busy := c.conns[i] != nil
		c.mu.Unlock()
		if busy {
			continue
		}
		if perSecond > 0 {
			at := start.Add(time.Duration(float64(k) / perSecond * 1e9))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		k++
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = c.Dial(dctx, i)
			cancel()
			<-sem
		}(i)
		if progress != nil && time.Since(lastProg) >= 100*time.Millisecond {
			lastProg = time.Now()
			progress(int(c.open.Load()))
		}
	}
	wg.Wait()
	if progress != nil {
		progress(int(c.open.Load()))
	}
}

// pick returns an open connection, round robin from the last one used.
func (c *Client) pick() *conn {
	n := len(c.conns)
	if n == 0 {
		return nil
	}
	start := int(c.rr.Add(1) % uint64(n))
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := 0; k < n; k++ {
		cn := c.conns[(start+k)%n]
		if cn != nil && cn.live.Load() {
			return cn
		}
	}
	return nil
}

// Fire sends one request, intended at the given time, on the next open connection. It
// never blocks on the network (the reactor queues what the socket does not take).
func (c *Client) Fire(intended time.Time) {
	c.sent.Add(1)
	cn := c.pick()
	if cn == nil {
		c.countErr(ErrNoConn, 1)
		return
	}
	cn.send(intended, 0)
}

// maxResends bounds how often one request is sent again after refusals, so a request
// cannot bounce between connections that all go away.
const maxResends = 3

// resend sends again a request the gateway never took (refused by GOAWAY, or never
// written), on another open connection; tries counts the sends so far.
func (c *Client) resend(intended time.Time, tries int, from *conn) {
	if tries >= maxResends {
		c.countErr(ErrRefused, 1)
		return
	}
	c.retried.Add(1)
	cn := c.pick()
	if cn == from {
		cn = c.pick() // a connection failing a write may still count as open
	}
	if cn == nil || cn == from {
		c.countErr(ErrNoConn, 1)
		return
	}
	cn.send(intended, tries+1)
}

// PingAll sends one PING on every open MMTP connection; the PONG's latency (from this
// call's time) is recorded like a response's. It is the heartbeat of idle connections.
func (c *Client) PingAll(intended time.Time) int {
	live := c.liveConns()
	for _, cn := range live {
		c.sent.Add(1)
		c.pings.Add(1)
		cn.ping(intended)
	}
	return len(live)
}

// PingNext sends a PING on the next open MMTP connection (round robin), so a schedule of
// rate open/period gives every connection one PING per period, spread evenly rather than
// all at once.
func (c *Client) PingNext(intended time.Time) {
	cn := c.pick()
	if cn == nil {
		c.sent.Add(1)
		c.countErr(ErrNoConn, 1)
		return
	}
	c.sent.Add(1)
	c.pings.Add(1)
	cn.ping(intended)
}

// PauseReads stops reading every open connection: a slow reader, as far as the target
// can tell. Responses pile up in the kernel and then in the target's write queues.
func (c *Client) PauseReads() {
	c.each(func(cn *conn) { cn.nc.PauseRead() })
}

// CloseAll closes every connection (the reconnect storm's first half). Requests in flight
// on them count as conn_closed.
func (c *Client) CloseAll() {
	c.each(func(cn *conn) { cn.nc.Close() })
}

func (c *Client) each(f func(*conn)) {
	c.mu.Lock()
	live := make([]*conn, 0, len(c.conns))
	for _, cn := range c.conns {
		if cn != nil {
			live = append(live, cn)
		}
	}
	c.mu.Unlock()
	for _, cn := range live {
		f(cn)
	}
}

// Sweep counts requests older than the timeout as timeouts and forgets them. Call it about
// once a second. Each also counts in the latencies, at what it waited (the timeout or a
// little more): a gateway stalled past the timeout must not look fast because the
// requests it stalled are left out (no coordinated omission).
func (c *Client) Sweep(now time.Time) {
	var n uint64
	c.each(func(cn *conn) { n += cn.sweep(now.Add(-c.lim), now, true) })
	c.countErr(ErrTimeout, n)
}

// SweepAll counts every request still unanswered as a timeout, at the end of a phase
// (after a drain). record says whether they also count in the latencies, at what they
// waited: yes after a drain that waited for them, no when the run was stopped.
func (c *Client) SweepAll(record bool) {
	var n uint64
	now := time.Now()
	c.each(func(cn *conn) { n += cn.sweep(now.Add(time.Hour), now, record) })
	c.countErr(ErrTimeout, n)
}

// dropped is called by a connection's OnClose.
func (c *Client) dropped(cn *conn, reason netpoll.CloseReason, inflight int) {
	c.mu.Lock()
	if c.conns[cn.idx] == cn {
		c.conns[cn.idx] = nil
	}
	c.mu.Unlock()
	if cn.live.Swap(false) {
		c.open.Add(-1)
	}
	c.countErr(ErrClosed, uint64(inflight))
	if reason != netpoll.ReasonLocal && reason != netpoll.ReasonShutdown {
		c.countErr("closed_"+reason.String(), 1)
	}
}

// Snapshot is the client's counters at one moment.
type Snapshot struct {
	Open   int               `json:"open"`
	Sent   uint64            `json:"sent"`
	OK     uint64            `json:"ok"`
	Errors map[string]uint64 `json:"errors"`
	// Retried counts requests the gateway refused (GOAWAY) that were sent again on
	// another connection; their outcome is counted once, in OK or Errors.
	Retried uint64 `json:"retried,omitempty"`
}

// Snapshot returns the counters now.
func (c *Client) Snapshot() Snapshot {
	s := Snapshot{Open: int(c.open.Load()), Sent: c.sent.Load(), OK: c.ok.Load(), Errors: map[string]uint64{},
		Retried: c.retried.Load()}
	c.errMu.Lock()
	for k, v := range c.errs {
		s.Errors[k] = v
	}
	c.errMu.Unlock()
	return s
}

// ErrorKinds lists the kinds seen, sorted, for stable output.
func (s Snapshot) ErrorKinds() []string {
	ks := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TotalErrors sums every kind.
func (s Snapshot) TotalErrors() uint64 {
	var n uint64
	for _, v := range s.Errors {
		n += v
	}
	return n
}

// InFlight returns the requests (and PINGs) sent and not yet answered, timed out or lost.
func (c *Client) InFlight() int {
	n := int(max(c.pings.Load(), 0))
	c.each(func(cn *conn) {
		cn.mu.Lock()
		n += cn.owedLocked()
		cn.mu.Unlock()
	})
	return n
}

// SlowRefusal is how long a refusal (503) may take before it counts as slow: a gateway
// that refuses what it cannot serve should say so at once.
const SlowRefusal = 10 * time.Millisecond

// Refusals returns the slowest 503 answer's latency and how many took over SlowRefusal.
func (c *Client) Refusals() (slowest time.Duration, slow uint64) {
	return time.Duration(c.refusalMax.Load()), c.slowRefusals.Load()
}

// SentRefusals is Refusals counted from when each request was written (MMTP only).
func (c *Client) SentRefusals() (slowest time.Duration, slow uint64) {
	return time.Duration(c.sentRefusalMax.Load()), c.slowSentRefusals.Load()
}

// Lateness returns the most a request was written after its intended send time: a
// refusal or an answer can be no faster than that, whatever the gateway does.
func (c *Client) Lateness() time.Duration { return time.Duration(c.lateMax.Load()) }

// sentLate records that a request intended at t is being written now.
func (c *Client) sentLate(t time.Time) {
	late := int64(time.Since(t))
	for m := c.lateMax.Load(); late > m && !c.lateMax.CompareAndSwap(m, late); m = c.lateMax.Load() {
	}
}

// FinishPings counts PINGs still unanswered as timeouts; call it once, at the end.
func (c *Client) FinishPings() {
	if n := c.pings.Swap(0); n > 0 {
		c.countErr(ErrTimeout, uint64(n))
	}
}

// ResetCounters zeroes sent, ok and the request errors, so a measured phase after a
// warm-up starts from nothing. Connection failures of the ramp are kept: the report must
// still say how many connections could not be made.
func (c *Client) ResetCounters() {
	c.resetAt.Store(time.Now().UnixNano())
	c.sent.Store(0)
	c.ok.Store(0)
	c.retried.Store(0)
	c.pings.Store(0)
	c.errMu.Lock()
	for k := range c.errs {
		if k != ErrConnect && k != ErrHelloRefus {
			delete(c.errs, k)
		}
	}
	c.errMu.Unlock()
}

// liveConns is a snapshot of the open connections.
func (c *Client) liveConns() []*conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := make([]*conn, 0, len(c.conns))
	for _, cn := range c.conns {
		if cn != nil && cn.live.Load() {
			live = append(live, cn)
		}
	}
	return live
}
