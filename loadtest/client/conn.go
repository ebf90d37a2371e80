package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/netpoll"
)

// helloStream is the stream id of the HELLO; requests start after it.
const helloStream = 1

// conn is one connection and its netpoll.Handler: the engine calls OnData for it from one
// goroutine at a time, while Fire may call send from the scheduler's goroutine.
type conn struct {
	cl     *Client
	idx    int
	device string
	nc     netpoll.Conn
	live   atomic.Bool
	closed atomic.Bool // set when OnClose begins

	helloCh chan int // status of the HELLO's answer, when a HELLO is sent
	// batchIdx is 1 + its index in the client's FireQueued batch, 0 when not in it; the
	// schedule's goroutine only.
	batchIdx int

	mu       sync.Mutex
	next     uint32          // last stream id used (MMTP)
	inflight map[uint32]sent // MMTP: stream -> when it was meant to go, and went
	tries    map[uint32]int  // MMTP: stream -> earlier sends of that request; nil when none
	// MMTP GOAWAY: after one, streams above last were refused (safe to send again), those
	// at or below it are owed an answer.
	away bool
	last uint32
	fifo []sent // HTTP: requests in flight, answered in order (zero: counted as a timeout)

	// HTTP response parsing state; touched only by OnData.
	inBody bool
	status int
	body   http1.BodyDecoder
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// send writes one request intended at t; tries is how often it was sent before (a
// request the gateway refused goes out again on another connection).
func (cn *conn) send(t time.Time, tries int) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	cn.mu.Lock()
	if cn.cl.cfg.Protocol == "mmtp" {
		s, ok := cn.nextStreamLocked(t, tries)
		if !ok {
			cn.mu.Unlock()
			cn.cl.resend(t, tries, cn)
			return
		}
		*bp = cn.cl.reqs.build((*bp)[:0], cn, s)
		cn.mu.Unlock()
		if tries == 0 { // a resend's delay is the gateway's refusal, not the harness's
			cn.cl.sentLate(t)
		}
		if err := cn.nc.Write(*bp); err != nil {
			cn.unsent(s)
		}
		return
	}
	// HTTP answers come in order, so the write and the queue entry are made together.
	*bp = cn.cl.reqs.build((*bp)[:0], cn, 0)
	if tries == 0 {
		cn.cl.sentLate(t)
	}
	now := time.Now()
	if err := cn.nc.Write(*bp); err != nil {
		cn.mu.Unlock()
		cn.cl.countErr(writeErrKind(err), 1)
		return
	}
	cn.fifo = append(cn.fifo, sent{t, now})
	cn.mu.Unlock()
}

// nextStreamLocked opens a stream for a request intended at t, or reports false when the
// connection has had a GOAWAY (the gateway would not take it).
func (cn *conn) nextStreamLocked(t time.Time, tries int) (uint32, bool) {
	return cn.nextStreamAtLocked(t, time.Now(), tries)
}

// sent is an MMTP request in flight: its intended send time, from which every latency
// counts, and when it was written, from which a refusal's own time counts.
type sent struct{ intended, at time.Time }

// nextStreamAtLocked is nextStreamLocked for a request written at now.
func (cn *conn) nextStreamAtLocked(t, now time.Time, tries int) (uint32, bool) {
	if cn.away {
		return 0, false
	}
	cn.next++
	if cn.next <= helloStream {
		cn.next = helloStream + 1
	}
	s := cn.next
	cn.inflight[s] = sent{t, now}
	if tries > 0 {
		if cn.tries == nil {
			cn.tries = map[uint32]int{}
		}
		cn.tries[s] = tries
	}
	return s, true
}

// unsent takes back a stream whose write failed: the reactor queued nothing, so the
// gateway never saw it, and it goes out again on another connection.
func (cn *conn) unsent(s uint32) {
	cn.mu.Lock()
	r, mine := cn.inflight[s] // else OnClose or a GOAWAY accounted for it
	t := r.intended
	tries := cn.tries[s]
	delete(cn.inflight, s)
	delete(cn.tries, s)
	cn.mu.Unlock()
	if mine {
		cn.cl.resend(t, tries, cn)
	}
}

// ping sends a PING carrying its intended time, so the PONG's latency needs no state.
func (cn *conn) ping(t time.Time) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	if err := cn.nc.Write(appendPing(nil, b[:])); err != nil {
		cn.cl.pings.Add(-1)
		cn.cl.countErr(ErrWrite, 1)
	}
}

// hello greets the gateway and waits for its answer.
func (cn *conn) hello(ctx context.Context, nc netpoll.Conn) error {
	if err := nc.Write(cn.cl.reqs.(*mmtpRequests).hello(nil, cn)); err != nil {
		cn.cl.countErr(ErrConnect, 1)
		return fmt.Errorf("hello: %w", err)
	}
	select {
	case st := <-cn.helloCh:
		if st != 200 {
			cn.cl.countErr(ErrHelloRefus, 1)
			return fmt.Errorf("hello answered %d", st)
		}
		return nil
	case <-ctx.Done():
		cn.cl.countErr(ErrConnect, 1)
		return fmt.Errorf("hello: %w", ctx.Err())
	}
}

// answered records the outcome of one request intended at t and written at sentAt (zero:
// not known), whose answer came in the read r. A request sent before the counters were
// last reset (the warm-up's, answered in the measured window) belongs to no window:
// counted, it made a window's answers outnumber its requests.
//
// Latency counts from the intended time, or from the write when that came first: the
// schedule fires a send due within its timer's resolution early (openloop.Run), and an
// answer seen ready at once would otherwise be counted faster than the target served it.
func (cn *conn) answered(t, sentAt time.Time, r *readTimes, status int) {
	end := r.end(t, sentAt)
	start := t
	if !sentAt.IsZero() && sentAt.Before(t) {
		start = sentAt
	}
	lat := int64(end.Sub(start))
	ok := status >= 200 && status < 300
	warmup := t.UnixNano() < cn.cl.resetAt.Load()
	if !warmup && (ok || !cn.cl.cfg.OKLatencyOnly) {
		cn.cl.rec.Record(lat)
	}
	switch {
	case warmup:
	case ok:
		cn.cl.ok.Add(1)
	case status == 503:
		cn.cl.countErr(statusKind(status), 1)
		for m := cn.cl.refusalMax.Load(); lat > m && !cn.cl.refusalMax.CompareAndSwap(m, lat); m = cn.cl.refusalMax.Load() {
		}
		if lat > int64(SlowRefusal) {
			cn.cl.slowRefusals.Add(1)
		}
		if !sentAt.IsZero() {
			took := int64(end.Sub(sentAt))
			for m := cn.cl.sentRefusalMax.Load(); took > m && !cn.cl.sentRefusalMax.CompareAndSwap(m, took); m = cn.cl.sentRefusalMax.Load() {
			}
			if took > int64(SlowRefusal) {
				cn.cl.slowSentRefusals.Add(1)
			}
		}
	default:
		cn.cl.countErr(statusKind(status), 1)
	}
	if cn.cl.closedLoop.Load() && cn.live.Load() { // not after a GOAWAY
		cn.cl.sent.Add(1)
		cn.send(time.Now(), 0)
	}
}

// readTimes are the times of one read of answers (netpoll.Conn.ReadyAt): when its bytes
// were ready, and when a worker took them; whether ready dates every byte of the read
// (the kernel's receive stamp, Config.RxTimestamps) or only the first (the poller's
// wake-up); and whether an answer of the read has ended already.
type readTimes struct {
	ready, now time.Time
	whole      bool
	first      bool // the next answer is the read's first
}

// end is when an answer in the read ended, for a request intended at t and written at
// sentAt; never before its bytes came. On a box the harness shares with its target, the
// harness's own wait for a CPU is not the target's latency, so no answer ends when a
// worker got to it if the read says when it came:
//   - with the kernel's stamp, every answer of the read had come by the newest bytes'
//     arrival, and ends then;
//   - with the poller's, the read's first answer was in the socket when the poller saw it
//     ready and ends then; the answers behind it may have come at any time until the
//     read, so they end at the read, as does one to a request written after the stamp.
func (r *readTimes) end(t, sentAt time.Time) time.Time {
	first := r.first
	r.first = false
	written := sentAt // no answer comes before its request went out
	if written.IsZero() {
		written = t
	}
	switch {
	case r.whole && !r.ready.Before(written):
		return r.ready
	case !r.whole && first && !r.ready.Before(t) && !r.ready.Before(sentAt):
		return r.ready
	}
	return r.now
}

// readTimes reads c's ReadyAt for a read's answers.
func (cn *conn) readTimes(c netpoll.Conn) readTimes {
	ready, now := c.ReadyAt()
	return readTimes{ready: ready, now: now, whole: cn.cl.cfg.RxTimestamps, first: true}
}

// sweep forgets requests intended before cutoff and returns how many.
func (cn *conn) sweep(cutoff, now time.Time, record bool) uint64 {
	var n uint64
	cn.mu.Lock()
	defer cn.mu.Unlock()
	for s, r := range cn.inflight {
		if r.intended.Before(cutoff) {
			delete(cn.inflight, s)
			delete(cn.tries, s)
			cn.timedOut(r.intended, now, record)
			n++
		}
	}
	// HTTP answers are ordered: only a prefix can be late. They stay queued (their answer
	// will still come and must be matched) but are marked by zero time so they count once.
	for i, r := range cn.fifo {
		if r.intended.IsZero() {
			continue
		}
		if !r.intended.Before(cutoff) {
			break
		}
		cn.fifo[i] = sent{}
		cn.timedOut(r.intended, now, record)
		n++
	}
	return n
}

// timedOut records a request intended at t that got no answer by now in the latencies
// (Sweep says why), when record, unless they hold OK answers only or it was the warm-up's.
func (cn *conn) timedOut(t, now time.Time, record bool) {
	if record && !cn.cl.cfg.OKLatencyOnly && t.UnixNano() >= cn.cl.resetAt.Load() {
		cn.cl.rec.Record(int64(now.Sub(t)))
	}
}

// OnOpen keeps the netpoll connection; it runs before any OnData.
func (cn *conn) OnOpen(c netpoll.Conn) { cn.nc = c }

// OnData decodes what the target sent.
func (cn *conn) OnData(c netpoll.Conn, data []byte) (int, error) {
	if cn.cl.cfg.Protocol == "mmtp" {
		return cn.onMMTP(c, data)
	}
	return cn.onHTTP(c, data)
}

// OnTimeout is not armed for client connections (the engine's idle timeout is off).
func (cn *conn) OnTimeout(c netpoll.Conn, _ netpoll.TimeoutKind) {}

// owedLocked is how many requests on cn still wait for an answer: MMTP streams in flight
// and HTTP requests not yet counted as timeouts. Called under mu.
func (cn *conn) owedLocked() int {
	n := len(cn.inflight)
	for _, r := range cn.fifo {
		if !r.intended.IsZero() {
			n++
		}
	}
	return n
}

// OnClose counts the requests lost with the connection. After a GOAWAY, those at or below
// its last-stream-id were owed an answer (lost); any above it were refused and go out
// again. Without one, whether the gateway took them is unknown (conn_closed).
func (cn *conn) OnClose(c netpoll.Conn, r netpoll.CloseReason) {
	cn.closed.Store(true)
	cn.mu.Lock()
	n := cn.owedLocked()
	var lost uint64
	type refusal struct {
		t     time.Time
		tries int
	}
	var refused []refusal
	if cn.away {
		for s, r := range cn.inflight {
			if s > cn.last {
				refused = append(refused, refusal{r.intended, cn.tries[s]})
			} else {
				lost++
			}
		}
		n = 0
	}
	clear(cn.inflight)
	cn.tries = nil
	cn.fifo = nil
	cn.mu.Unlock()
	cn.cl.countErr(ErrLost, lost)
	cn.cl.dropped(cn, r, n)
	for _, f := range refused {
		cn.cl.resend(f.t, f.tries, cn)
	}
}

// writeErrKind classifies a failed write: a connection that was closing when the schedule
// picked it (a reconnect storm, a gateway close) is conn_closed, anything else write.
func writeErrKind(err error) string {
	if errors.Is(err, netpoll.ErrClosed) {
		return ErrClosed
	}
	return ErrWrite
}
