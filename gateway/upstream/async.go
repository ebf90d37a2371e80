package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/internal/clock"
	"github.com/mgw-project/mgw/netpoll"
)

// CallAsync is Call without a goroutine waiting for the backend (issue 11 item 3,
// design.md "The reactor never blocks"). With Options.Engine set, the request is written
// to a connection the gateway's reactor serves, and the answer is parsed as it arrives,
// on a reactor worker; done runs there (or on this goroutine, when the call fails before
// anything was sent, or on a timer's when the deadline passes). done is called exactly
// once, with the same results Call returns. req must stay untouched until then.
//
// Without an engine (a cluster built for tests or tools), CallAsync is Call on the
// calling goroutine.
func (c *Cluster) CallAsync(req *codec.Request, timeout time.Duration, done func(*codec.Response, error)) {
	c.CallAsyncAt(req, time.Now(), timeout, DoneFunc(done))
}

// Done hears how a CallAsyncAt ended (CallAsync's done).
type Done interface {
	Answered(resp *codec.Response, err error)
}

// DoneFunc is a func as a Done.
type DoneFunc func(*codec.Response, error)

func (f DoneFunc) Answered(resp *codec.Response, err error) { f(resp, err) }

// CallAsyncAt is CallAsync with an interface for done (a caller whose per-request state
// implements it passes it without allocating a func value per call), for a caller that
// has just read the clock: the call begins now, and its deadline counts from then.
func (c *Cluster) CallAsyncAt(req *codec.Request, now time.Time, timeout time.Duration, done Done) {
	if c.eng == nil {
		done.Answered(c.Call(context.Background(), req, timeout))
		return
	}
	if req.Operation == "" {
		done.Answered(nil, newError(Invalid, c.name, "", false, errors.New("operation type is empty")))
		return
	}
	bp := headPool.Get().(*[]byte)
	head, err := appendCallHead((*bp)[:0], c.pathPrefix, req)
	*bp = head
	if err != nil {
		putHead(bp)
		done.Answered(nil, newError(Invalid, c.name, "", false, err))
		return
	}
	if timeout <= 0 {
		timeout = c.timeout
	}
	a := &asyncCall{c: c, body: req.Body, done: done, buf: bp, base: len(head)}
	a.begin(now, timeout)
}

// begin arms the call's deadline and makes its first attempt, now.
func (a *asyncCall) begin(now time.Time, timeout time.Duration) {
	a.deadline = now.Add(timeout)
	if !a.c.deadlines.add(a, timeout) {
		a.mu.Lock() // a tiny timeout may fire before a.timer is set: expire waits for it here
		a.timer = time.AfterFunc(timeout, a.expire)
		a.mu.Unlock()
	}
	a.tryAt(now)
}

func putHead(bp *[]byte) {
	if bp != nil && cap(*bp) <= maxPooledHead {
		headPool.Put(bp)
	}
}

// asyncCall is one CallAsync or ForwardAsync from start to done: its attempts (a connect
// failure is tried again, as Call does), the connection that carries it, and its
// deadline. Exactly one of done and fwd is set: it says which of the two it is.
type asyncCall struct {
	c    *Cluster
	body []byte // the request body; the caller keeps it untouched until the end
	done Done
	fwd  func(*ProxyResponse, error)
	// interim is ForwardAsync's ProxyRequest.Interim; nil for CallAsync, whose interim
	// answers are skipped.
	interim Interim
	// ForwardAsync's: the request method (a HEAD's answer has no body) and the client's
	// Host, sent as is ("": the host's address).
	method   string
	hostName string
	buf      *[]byte // the request head without Host (base bytes), then Host and any inline body
	base     int
	deadline time.Time
	timer    *time.Timer // the deadline's own timer, when the cluster's deadlines had no room
	tries    int

	// The call's place in its cluster's deadlines, under deadlines.mu.
	dl             *deadlineList
	dlPrev, dlNext *asyncCall

	mu      sync.Mutex
	over    bool // done has been claimed; whoever set it delivers
	h       *host
	start   time.Time
	conn    *asyncConn // the connection the request is on; its sender owns buf from then on
	writing bool       // the request's bytes may have gone out: it counts as sent
	failed  *Error     // the last connect failure, which says more than "no host left"
}

// claimed is what an ended call still has to give back: its attempt's host, and whether
// a connection holds its request (then the head buffer is the sender's to give back, once
// written: it may still be writing from it).
type claimed struct {
	h     *host
	start time.Time
	conn  *asyncConn
	sent  bool
}

// errConnecting is the cause of a Timeout that came while the call's connection was
// being dialed (or between connect attempts).
var errConnecting = errors.New("no connection to the backend before the deadline: still connecting")

// try begins an attempt: a host, then a connection from its pool.
func (a *asyncCall) try() { a.tryAt(time.Now()) }

// tryAt is try when the clock was read already (now).
func (a *asyncCall) tryAt(now time.Time) {
	if a.isOver() { // the deadline passed during a connect backoff
		return
	}
	a.tries++
	h, e := a.c.acquire()
	if e != nil {
		if a.failed != nil {
			e = a.failed
		}
		a.fail(e)
		return
	}
	a.mu.Lock()
	if a.over { // the deadline passed just now: given back uncounted, nothing was tried
		a.mu.Unlock()
		a.c.release(h, now, Canceled, 0)
		return
	}
	a.h, a.start = h, now
	a.mu.Unlock()
	h.async.get(a)
}

// claim ends the call: it returns what deliver gives back and ok, once; later callers
// get ok false and must leave done alone.
func (a *asyncCall) claim() (claimed, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.over {
		return claimed{}, false
	}
	a.over = true
	cl := claimed{h: a.h, start: a.start, conn: a.conn, sent: a.writing}
	a.h = nil
	return cl, true
}

// report hands an error to the caller, in the form its call returns.
func (a *asyncCall) report(e *Error) {
	if a.fwd != nil {
		a.fwd(nil, e)
		return
	}
	a.done.Answered(nil, e)
}

// startWrite marks the request as going out, unless the call ended meanwhile.
func (a *asyncCall) startWrite() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.over {
		return false
	}
	a.writing = true
	return true
}

func (a *asyncCall) isWriting() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writing
}

func (a *asyncCall) isOver() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.over
}

// settle gives back what a claimed call holds before its caller hears of it: the deadline,
// the attempt's host, released as kind and status say (kind 0: the backend answered),
// and the head buffer when no sender has it.
func (a *asyncCall) settle(cl claimed, kind Kind, status int, now time.Time) {
	if a.timer != nil {
		a.timer.Stop()
	} else {
		a.c.deadlines.remove(a)
	}
	if cl.h != nil {
		a.c.releaseAt(cl.h, cl.start, now, kind, status)
	}
	if cl.conn == nil {
		putHead(a.releaseHead()) // no sender has it
	}
}

// deliverErr finishes a claimed call with the failure e.
func (a *asyncCall) deliverErr(cl claimed, e *Error) {
	a.settle(cl, e.Kind, 0, time.Now())
	a.report(e)
}

// fail ends the call with e, whose attempt (if any) was released already.
func (a *asyncCall) fail(e *Error) {
	if cl, ok := a.claim(); ok {
		a.deliverErr(cl, e)
	}
}

// expire is the deadline: a call still waiting for a connection gives up unsent, one
// whose request went out takes the connection down with it (its answer may still be
// coming); one about to write backs out (startWrite).
func (a *asyncCall) expire() {
	cl, ok := a.claim()
	if !ok {
		return
	}
	var cause error
	switch {
	case cl.sent:
		cause = fmt.Errorf("no answer within the timeout: %w", os.ErrDeadlineExceeded)
		cl.conn.drop(a)
	case cl.conn != nil:
		cause = errors.New("the deadline passed before the request went out")
	case cl.h != nil && cl.h.async.dequeue(a):
		cause = errPoolWait
	default:
		cause = errConnecting
	}
	a.deliverErr(cl, newError(Timeout, a.c.name, cl.hostName(), cl.sent, cause))
}

func (cl claimed) hostName() string {
	if cl.h == nil {
		return ""
	}
	return cl.h.name
}

// connectFailed ends an attempt that got no connection, and tries again where Call would.
func (a *asyncCall) connectFailed(err error) {
	a.mu.Lock()
	if a.over {
		a.mu.Unlock()
		return
	}
	h, start := a.h, a.start
	a.h = nil
	a.mu.Unlock()
	kind := classify(context.Background(), err, false, !time.Now().Before(a.deadline))
	a.c.release(h, start, kind, 0)
	e := newError(kind, a.c.name, h.name, false, err)
	a.failed = e
	if kind != ConnectFailed || a.tries >= maxConnectAttempts {
		a.fail(e)
		return
	}
	a.c.m.connectRetries.Inc()
	if a.c.otherHostAvailable(h) {
		a.try()
		return
	}
	wait := connectBackoff << (a.tries - 1)
	if time.Until(a.deadline) <= wait {
		a.fail(e)
		return
	}
	time.AfterFunc(wait, a.try)
}

// head returns the request head for host h (the client's Host, else the host's own
// address), with the body inline when it is small, and the body to write after it (nil
// when inline).
func (a *asyncCall) head(h *host) (head, body []byte) {
	host := a.hostName
	if host == "" {
		host = h.addr
	}
	b := appendHostAndEnd((*a.buf)[:a.base], host)
	body = a.body
	if len(body) <= inlineBody {
		b, body = append(b, body...), nil
	}
	*a.buf = b
	return b, body
}

// asyncPool is one host's connections for CallAsync: reactor connections, each carrying
// one exchange at a time. It keeps Call's rules: at most maxConns, a connection put
// back goes to the oldest caller waiting (never closed while a caller dials a new one),
// at most maxIdle kept idle, each for at most idleTimeout. An idle connection the backend
// closes is seen by the reactor at once and dropped, so none is peeked at before use.
type asyncPool struct {
	addr           string
	eng            netpoll.Engine
	connectTimeout time.Duration
	maxConns       int
	maxIdle        int
	idleTimeout    time.Duration

	mu      sync.Mutex
	open    int          // connections counted against maxConns: in use, idle or dialing
	dialing int          // connects in flight, at most maxDialing
	idle    []*asyncConn // most recently used last
	waitq   []*asyncCall // callers waiting for a connection or a connect, oldest first
	closed  bool
}

func newAsyncPool(eng netpoll.Engine, addr string, connectTimeout time.Duration, maxConns, maxIdle int, idleTimeout time.Duration) *asyncPool {
	return &asyncPool{addr: addr, eng: eng, connectTimeout: connectTimeout, maxConns: maxConns,
		maxIdle: maxIdle, idleTimeout: idleTimeout}
}

// get puts a on an idle connection, a new one, or in line for one.
func (p *asyncPool) get(a *asyncCall) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		ac := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if !ac.send(a) {
			p.put(ac)
		}
		return
	}
	if p.open < p.maxConns && p.dialing < maxDialing {
		p.open++
		p.dialing++
		p.mu.Unlock()
		p.dial(a)
		return
	}
	p.waitq = append(p.waitq, a)
	p.mu.Unlock()
}

// maxDialing bounds the connects in flight to one host. A burst of calls to an empty
// pool (a start, a flood) dialed one connection per call at once: a goroutine each in
// the gateway (a hundred at the peak of issue 12's memory flood) and a SYN storm at the
// backend. Past it, calls wait in line for a connection another call puts back, or for
// the next connect. Not much lower: a backend whose accept queue overflows drops SYNs,
// each such connect then waits a second for the kernel's retransmit, and with eight at a
// time issue 12's 1,000 calls through such a backend took 57 s instead of 4.
const maxDialing = 32

// nextDialLocked takes the oldest waiter to dial for, counting the slot and the connect,
// when there is room for both; nil otherwise.
func (p *asyncPool) nextDialLocked() *asyncCall {
	if len(p.waitq) == 0 || p.open >= p.maxConns || p.dialing >= maxDialing {
		return nil
	}
	p.open++
	p.dialing++
	return p.popWaiterLocked()
}

// popWaiterLocked takes the oldest call in line; the line must not be empty.
func (p *asyncPool) popWaiterLocked() *asyncCall {
	a := p.waitq[0]
	p.waitq[0] = nil
	p.waitq = p.waitq[1:]
	return a
}

// dequeue takes a out of the line, and reports whether it was in it.
func (p *asyncPool) dequeue(a *asyncCall) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return remove(&p.waitq, a)
}

// takeIdle takes ac off the idle list, and reports whether it was on it (then nobody
// else holds it).
func (p *asyncPool) takeIdle(ac *asyncConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return remove(&p.idle, ac)
}

// remove deletes x from *list, and reports whether it was there.
func remove[T comparable](list *[]T, x T) bool {
	i := slices.Index(*list, x)
	if i < 0 {
		return false
	}
	*list = slices.Delete(*list, i, i+1)
	return true
}

// dial starts a connection for a with the slot get counted for it. The connect runs in
// the reactor: no goroutine waits for the handshake.
func (p *asyncPool) dial(a *asyncCall) {
	if a.isOver() {
		p.dialed(false)
		return
	}
	ac := &asyncConn{p: p}
	var err error
	if timeout := min(p.connectTimeout, time.Until(a.deadline)); timeout > 0 {
		err = p.eng.DialAsync(p.addr, timeout, ac, func(_ netpoll.Conn, err error) { p.connected(a, ac, err) })
	} else {
		err = fmt.Errorf("dial %q: %w", p.addr, context.DeadlineExceeded)
	}
	if err != nil {
		// Not inline: the next waiter's dial may fail at once too (the engine closed,
		// no fds left), and so on down the line, each a frame deeper on this stack.
		go p.connected(a, ac, err)
	}
}

// connected ends a's connect: the request goes out on the new connection, or the call
// tries again (connectFailed).
func (p *asyncPool) connected(a *asyncCall, ac *asyncConn, err error) {
	p.dialed(err == nil)
	if err != nil {
		a.connectFailed(err)
		return
	}
	if !ac.send(a) {
		p.put(ac)
	}
}

// dialed ends a connect: its slot stays with the connection it opened, or is freed; and
// the next caller in line, if any, may dial now.
func (p *asyncPool) dialed(opened bool) {
	p.mu.Lock()
	p.dialing--
	if !opened {
		p.open--
	}
	next := p.nextDialLocked()
	p.mu.Unlock()
	if next != nil {
		p.dial(next)
	}
}

// put takes back a connection after a complete exchange: to the oldest waiter, else idle.
func (p *asyncPool) put(ac *asyncConn) {
	p.mu.Lock()
	for len(p.waitq) > 0 && !p.closed {
		a := p.popWaiterLocked()
		p.mu.Unlock()
		if ac.send(a) {
			return
		}
		p.mu.Lock()
	}
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		ac.c.Close()
		return
	}
	// Checked under p.mu: a close after this finds ac in the list (closedConn).
	ac.mu.Lock()
	closed := ac.closed
	ac.mu.Unlock()
	if !closed {
		p.idle = append(p.idle, ac)
	}
	p.mu.Unlock()
}

// release frees a closed (or never opened) connection's slot: to the oldest waiter, to
// dial with, or to the cap.
func (p *asyncPool) release() {
	p.mu.Lock()
	p.open--
	next := p.nextDialLocked()
	p.mu.Unlock()
	if next != nil {
		p.dial(next)
	}
}

// closedConn drops ac from the idle list and frees its slot.
func (p *asyncPool) closedConn(ac *asyncConn) {
	p.takeIdle(ac)
	p.release()
}

// close closes the idle connections; those in use close when they are put back.
func (p *asyncPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, ac := range idle {
		ac.c.Close()
	}
}

// idleCount is for tests.
func (p *asyncPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// asyncConn is one reactor connection to a backend and the answer being read on it. The
// reactor runs its handler methods one at a time; send runs on the caller's goroutine,
// so what both touch is under mu.
type asyncConn struct {
	p *asyncPool
	c netpoll.Conn

	mu     sync.Mutex
	call   *asyncCall // the exchange in progress; nil while idle
	sender *asyncCall // the call whose request is being written now (send); nil otherwise
	closed bool
	// stream is a forwarded answer's body being streamed to its reader; its call has been
	// delivered. Whoever takes it off (the end of the body, the close, the reader giving
	// up) ends it.
	stream *fwdStream

	// The answer being read (the reactor's worker only):
	headDone bool
	interim  int
	head     http1.ResponseHead
	body     http1.BodyDecoder
	buf      []byte
	pooled   *[]byte // buf's, when it came from codec.PooledBody
}

var (
	errBackendClosed = errors.New("backend closed the connection before answering")
	errUnsolicited   = errors.New("backend sent bytes nobody asked for")
)

// send writes a's request on ac. It returns false, touching nothing, when a is over
// already (the caller keeps ac). A connection found closed (the backend closed it while
// idle) sent nothing: a goes back to the pool for another.
func (ac *asyncConn) send(a *asyncCall) bool {
	a.mu.Lock()
	if a.over {
		a.mu.Unlock()
		return false
	}
	h := a.h
	a.conn = ac // from here on the head buffer is the sender's (deliver leaves it)
	a.mu.Unlock()
	head, body := a.head(h)
	ac.mu.Lock()
	if ac.closed {
		ac.mu.Unlock()
		a.c.m.idleRetries.Inc()
		a.retry(ac, h)
		return true
	}
	// While sending, a close leaves the call to this sender (OnClose), which alone knows
	// whether a byte of it went out. The mark names the call: a sender that returns late
	// from its write must not clear the next call's.
	ac.call, ac.sender = a, a
	ac.headDone, ac.interim, ac.buf, ac.pooled = false, 0, nil, nil
	ac.head = http1.ResponseHead{}
	ac.mu.Unlock()
	if !a.startWrite() {
		// The deadline came meanwhile, and its drop may have missed ac.call: back out
		// before writing, or the connection would wait for an answer nobody takes.
		ac.mu.Lock()
		if ac.call == a {
			ac.call = nil
		}
		if ac.sender == a {
			ac.sender = nil
		}
		ac.mu.Unlock()
		putHead(a.releaseHead()) // nothing was written from it, and the call is over
		return false
	}
	var err error
	if body == nil {
		err = ac.c.Write(head)
	} else {
		err = ac.c.Writev(head, body)
	}
	ac.mu.Lock()
	if ac.sender == a {
		ac.sender = nil
	}
	mine := ac.call == a // else its answer came (finish) or its deadline took it (drop)
	closed := ac.closed
	if mine && (err != nil || closed) {
		ac.call = nil
	}
	ac.mu.Unlock()
	switch {
	case err == nil:
		putHead(a.releaseHead()) // the engine copied what the socket did not take
		if mine && closed {
			// Written, then closed before the answer (OnClose left the call to us).
			a.failSent(Failed, 0, errBackendClosed)
		}
	case errors.Is(err, netpoll.ErrClosed):
		// Closed before a byte went out (the backend closed it while idle): try another,
		// with the same head.
		a.c.m.idleRetries.Inc()
		a.retry(ac, h)
	default:
		ac.c.Close()
		putHead(a.releaseHead())
		a.failSent(Failed, 0, fmt.Errorf("writing the request: %w", err))
	}
	return true
}

// retry takes a off a connection that never carried its request and asks the pool for
// another, unless the call ended meanwhile.
func (a *asyncCall) retry(ac *asyncConn, h *host) {
	a.unsend(ac)
	if a.isOver() {
		// The deadline claimed it while it was on ac: its settle left the head to the
		// sender, which is this call now.
		putHead(a.releaseHead())
		return
	}
	h.async.get(a)
}

// releaseHead hands the head buffer back once the request is written; nil when the call
// is not its owner any more.
func (a *asyncCall) releaseHead() *[]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.buf
	a.buf = nil
	return b
}

// unsend takes a off a connection that never carried its request.
func (a *asyncCall) unsend(ac *asyncConn) {
	a.mu.Lock()
	if a.conn == ac {
		a.conn, a.writing = nil, false
	}
	a.mu.Unlock()
}

// failSent ends a call whose request may have reached the backend.
func (a *asyncCall) failSent(kind Kind, status int, err error) {
	cl, ok := a.claim()
	if !ok {
		return
	}
	a.deliverErr(cl, newError(kind, a.c.name, cl.hostName(), true, err))
}

// drop takes the connection down under a call that ended without its answer.
func (ac *asyncConn) drop(a *asyncCall) {
	ac.mu.Lock()
	mine := ac.call == a
	if mine {
		ac.call = nil
	}
	ac.mu.Unlock()
	if mine {
		ac.c.CloseWithReason(netpoll.ReasonTimeout)
	}
}

func (ac *asyncConn) OnOpen(c netpoll.Conn) {
	ac.c = c
	c.SetIdleTimeout(ac.p.idleTimeout)
}

// OnData reads the answer to the call in progress, or the body of a forwarded answer
// being streamed. Bytes with no call waiting for them break the protocol, and close the
// connection.
func (ac *asyncConn) OnData(_ netpoll.Conn, data []byte) (int, error) {
	ac.mu.Lock()
	a, st := ac.call, ac.stream
	ac.mu.Unlock()
	if st != nil {
		return ac.streamBody(st, data)
	}
	if a == nil || !a.isWriting() {
		return len(data), errUnsolicited // nothing asked yet: bytes no request can own
	}
	n, done, err := ac.read(a, data)
	if err != nil {
		ac.fail(a, err)
		return len(data), err
	}
	if !done {
		if a.fwd != nil && ac.headDone {
			// Not whole with its head: the rest streams, as Forward's would, unbounded
			// by the deadline (which bounds the time to the head).
			return ac.startStream(a, n, data)
		}
		return n, nil
	}
	keep := ac.head.KeepAlive && !ac.body.UntilClose() && n == len(data) // else more than one answer to one request
	w := ac.takeWhole(a)                                                 // before finish: a call it hands the connection on to resets it
	if cl, ok := ac.finish(a, keep); ok {
		a.deliverWhole(cl, w)
	}
	return len(data), nil
}

// whole is an answer read to its end, in the form its call returns.
type whole struct {
	status int
	call   *codec.Response
	fwd    *ProxyResponse
}

// takeWhole takes the answer read whole off the connection.
func (ac *asyncConn) takeWhole(a *asyncCall) whole {
	w := whole{status: ac.head.Status}
	if ac.pooled != nil {
		*ac.pooled = ac.buf // the answer's bytes, as SetPooledBody takes them
	}
	if a.fwd != nil {
		w.fwd = ac.proxyResponse(a.method)
		w.fwd.Whole, w.fwd.pooled = ac.buf, ac.pooled
	} else {
		w.call = &codec.Response{Status: ac.head.Status}
		if ac.pooled != nil {
			w.call.SetPooledBody(ac.pooled)
		} else if len(ac.buf) > 0 {
			w.call.Body = ac.buf
		}
		w.call.Header, w.call.Gzip = codecHeader(ac.head.Header, ac.head.Connection)
	}
	ac.head, ac.buf, ac.pooled = http1.ResponseHead{}, nil, nil // the answer owns them now
	return w
}

// deliverWhole hands a claimed call its answer.
func (a *asyncCall) deliverWhole(cl claimed, w whole) {
	now := clock.From(cl.start) // the one clock read of the answer: settle's and the caller's
	a.settle(cl, 0, w.status, now)
	if a.fwd != nil {
		w.fwd.Arrived = now
		a.fwd(w.fwd, nil)
		return
	}
	w.call.Arrived = now
	a.done.Answered(w.call, nil)
}

// read takes what it can of the answer from data: how much it consumed, and whether the
// answer is complete.
func (ac *asyncConn) read(a *asyncCall, data []byte) (int, bool, error) {
	off := 0
	for !ac.headDone {
		n, err := http1.ParseResponseHead(data[off:], &respLimits, &ac.head)
		if err != nil {
			return off, false, headError(err)
		}
		if n == 0 {
			return off, false, nil
		}
		off += n
		if ac.head.Status < 200 {
			ac.interim++
			if err := checkInterim(ac.head.Status, ac.interim); err != nil {
				return off, false, err
			}
			if a.interim != nil {
				a.passInterim(ac.head.Status, proxyHeader(ac.head.Header, ac.head.Connection))
			}
			ac.head = http1.ResponseHead{}
			continue
		}
		ac.headDone = true
		if a.fwd != nil {
			// A forwarded answer has no size limit: unless it is whole with its head, it
			// streams.
			ac.body.ResetResponse(&ac.head, a.method, 0, &respLimits)
		} else if err := startBody(&ac.head, &ac.body, a.c.maxResp); err != nil {
			return off, false, err
		}
		if ac.head.ContentLength > 0 && !ac.head.Chunked && !ac.body.Done() {
			if ac.head.ContentLength <= codec.PooledBodyMax {
				ac.pooled = codec.PooledBody()
				ac.buf = *ac.pooled
			} else if a.fwd == nil {
				ac.buf = make([]byte, 0, ac.head.ContentLength)
			}
		}
	}
	for {
		piece, n, done, err := ac.body.Decode(data[off:])
		off += n
		if err != nil {
			return off, false, bodyError(err)
		}
		ac.buf = append(ac.buf, piece...)
		if done {
			return off, true, nil
		}
		if len(piece) == 0 {
			return off, false, nil
		}
	}
}

// passInterim hands an interim answer to the caller unless the call is over (its
// deadline delivered a timeout meanwhile). The call cannot end while the caller takes it,
// so nothing of it follows the outcome.
func (a *asyncCall) passInterim(status int, header codec.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.over {
		a.interim.Interim(status, header)
	}
}

// finish ends the exchange in progress, its answer read, and gives the connection back
// to the pool when it may carry another request (keep). It returns the call's claim for
// its caller to deliver; ok false: the call ended otherwise (its deadline).
func (ac *asyncConn) finish(a *asyncCall, keep bool) (claimed, bool) {
	ac.mu.Lock()
	if ac.call == a {
		ac.call = nil
	}
	ac.mu.Unlock()
	cl, ok := a.claim()
	// An answer that came before the whole request went out (a backend refusing a body
	// early) leaves the rest of it queued: on a reused connection those bytes would
	// open the next exchange.
	if !ok || !keep || ac.c.QueuedBytes() > 0 {
		ac.c.Close()
	} else {
		ac.p.put(ac)
	}
	return cl, ok
}

// fail ends the exchange in progress with a broken answer, and the connection with it.
func (ac *asyncConn) fail(a *asyncCall, err error) {
	ac.mu.Lock()
	if ac.call == a {
		ac.call = nil
	}
	ac.mu.Unlock()
	ac.c.Close()
	if errors.Is(err, errTooLarge) {
		err = fmt.Errorf("%w (%d bytes)", err, a.c.maxResp)
	}
	a.failSent(Failed, 0, err)
}

// OnTimeout closes a connection idle in the pool for the idle timeout; one waiting for
// an answer is its call's deadline's business.
func (ac *asyncConn) OnTimeout(c netpoll.Conn, kind netpoll.TimeoutKind) {
	if kind != netpoll.TimeoutIdle {
		return
	}
	// Taken off the idle list first: a call that picked it meanwhile keeps it.
	if ac.p.takeIdle(ac) {
		c.CloseWithReason(netpoll.ReasonTimeout)
		return
	}
	// A streamed answer's backend that sent nothing for two idle timeouts while its
	// reader waits (a reader that lags holds the bytes, and the reads paused) has
	// stalled: the reader gets an error rather than wait for good.
	ac.mu.Lock()
	st := ac.stream
	ac.mu.Unlock()
	if st != nil && st.stalled() && ac.takeStream(st) {
		st.end(fmt.Errorf("response body: %w: nothing from the backend for %v", os.ErrDeadlineExceeded, 2*ac.p.idleTimeout))
		c.CloseWithReason(netpoll.ReasonTimeout)
	}
}

// OnClose ends the exchange in progress, if any: a body that runs until the close is
// complete now; anything else was cut short.
func (ac *asyncConn) OnClose(_ netpoll.Conn, _ netpoll.CloseReason) {
	ac.mu.Lock()
	ac.closed = true
	a, st := ac.call, ac.stream
	ac.stream = nil
	if ac.sender != nil && !ac.headDone {
		// The sender decides: nothing went out, or it did (send). Once an answer has
		// begun, the request was out, and the answer (a body that ends with the close)
		// is this side's to finish.
		a = nil
	} else {
		ac.call = nil
	}
	ac.mu.Unlock()
	ac.p.closedConn(ac)
	if st != nil {
		if ac.body.UntilClose() {
			ac.body.Finish()
			st.end(nil)
		} else {
			st.end(fmt.Errorf("response body: %w", io.ErrUnexpectedEOF))
		}
		return
	}
	if a == nil {
		return
	}
	switch {
	case ac.headDone && ac.body.UntilClose():
		ac.body.Finish()
		if cl, ok := a.claim(); ok {
			a.deliverWhole(cl, ac.takeWhole(a))
		}
	case ac.headDone:
		a.failSent(Failed, 0, fmt.Errorf("response body: %w", io.ErrUnexpectedEOF))
	default:
		a.failSent(Failed, 0, errBackendClosed)
	}
}
