package gateway

import (
	"math"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/internal/clock"
)

// Admission control (issue 19; docs/operations.md, "Overload").
//
// Past its capacity a gateway that takes every request parks them all as tasks: latency
// grows until callers give up, and the core is spent on answers nobody waits for. So a
// request is admitted before any work is done for it, on the reactor worker that decoded
// it: over the gateway-wide limit, or over its connection's fair share of it, it is
// answered 503 unavailable at once, with no task and no goroutine.
//
// The limit adapts to the latency of the requests it admits, bytes ready to the backend's
// answer, against the lowest latency seen lately (a gradient, as in Netflix's concurrency-limits and
// Envoy's adaptive concurrency filter). Past capacity, wherever the queue forms (a core
// the gateway shares, the reactor, the request pool, or the backend), admitted requests
// take longer: every window whose average is over the allowed latency (twice the
// baseline, and at least the baseline plus queue_target) shrinks the limit in proportion,
// smoothed; a limit that is what holds requests back while latency is fine grows by its
// square root. The baseline drops to any lower window average at once, and rises towards
// higher ones slowly (half the gap in about 14 s), so that a backend that became slower
// for good (or a mix of calls that moved to slower APIs) is accepted as it is, while a
// queue that grows over seconds is not: a slow backend gets as much concurrency as its
// latency asks for, not a fixed bound.
//
// A request's wait is counted from when the reactor saw its bytes ready
// (netpoll.Conn.ReadyAt), not from its decode: on a saturated core the queue forms in
// front of the reactor's workers, before any request is decoded. An API call runs on the
// reactor worker that decoded it (callAPI), so that is all its wait; with request tasks (a
// fleet's filters) the wait for the task to start adds to it. The average wait is CoDel's
// signal: the queue_wait the stats show, and what sheds a standing queue.
//
// Admitted requests that waited too long are not served either: while the queue stands
// (the last window's average wait over the target) one that waited over shed_after is
// answered 503 when its task starts, and one that waited past its route's timeout is
// answered 503 before the backend is called.

// refusal is why a request was not served.
type refusal uint8

const (
	admitted        refusal = iota
	refusedLimit            // the gateway-wide limit is reached
	refusedConn             // the connection holds its share of a limit under pressure
	refusedQueue            // it waited in a standing queue longer than shed_after
	refusedDeadline         // it waited longer than its route's timeout
	refusedPool             // the request pool had no worker (admission off, or a ceiling above the pool)
	nRefusals
)

var refusalNames = [nRefusals]string{"", "limit", "connection", "queue", "deadline", "pool"}

func (r refusal) String() string { return refusalNames[r] }

// Tuning of the adaptive limit that is not worth a knob.
const (
	admissionWindow     = 100 * time.Millisecond
	admissionMinSamples = 16
	// smoothing: the share of a window's gradient applied, so one noisy window (a GC
	// pause) moves the limit by at most a tenth.
	admissionSmoothing = 0.2
)

// admission is the gateway's overload control. admit and done run on every request; they
// touch only atomics (and the clock, on a refusal or over the limit) and allocate nothing.
type admission struct {
	off, fixed bool
	min, max   int64
	target     int64 // ns
	shedAfter  time.Duration

	inFlight atomic.Int64 // admitted and not yet done
	active   atomic.Int64 // connections holding at least one admitted request
	limit    atomic.Int64

	// The current window: waits (bytes ready to start) of the requests that started in
	// it, and the most requests in flight at an admission.
	winStart atomic.Int64 // monotonic ns since base
	winSum   atomic.Int64
	winN     atomic.Int64
	winPeak  atomic.Int64
	winLat   atomic.Int64 // latencies (bytes ready to answer) of the requests answered in it
	winLatN  atomic.Int64
	lastWait atomic.Int64 // the last closed window's average wait, ns
	standing atomic.Bool  // ... and whether it was over the target
	lastLat  atomic.Int64 // the last closed window's average latency, ns
	baseLat  atomic.Int64 // the latency baseline, ns
	base     time.Time
	mu       sync.Mutex // one window closes at a time
	est      float64    // the limit before rounding; guarded by mu

	overloaded  atomic.Bool  // the gateway refuses for good (sustained)
	lastRefused atomic.Int64 // when a request was last refused, ns since base (quiet)
	sustained   sustained    // guarded by mu

	counts  [nRefusals]atomic.Uint64 // admitted at 0, refusals by reason
	m       *admissionMetrics
	answers [nRefusals]*codec.Response // the refusals sent from the reactor; read-only
	idleFn  func()                     // connIdle
}

func newAdmission(c config.Admission, poolCap int, m *admissionMetrics) *admission {
	a := &admission{off: c.Off, fixed: c.Limit > 0, min: int64(max(1, c.MinLimit)), max: int64(c.MaxLimit),
		target: int64(c.QueueTarget.D()), shedAfter: c.ShedAfter.D(), base: time.Now(), m: m}
	if a.max <= 0 || a.max > int64(poolCap) {
		a.max = int64(poolCap)
	}
	a.min = min(a.min, a.max)
	switch {
	case a.fixed:
		a.est = float64(c.Limit)
	default:
		// Start at the floor and grow while the limit binds and nothing waits (by
		// sqrt(limit) a window). Starting high let a first surge take a thousand request
		// tasks, whose goroutines outlived it; a burst at the floor still gets limit/4 more
		// for connections below their share (admit).
		a.est = float64(a.min)
	}
	a.limit.Store(int64(a.est))
	a.idleFn = a.connIdle
	for r := refusedLimit; r < nRefusals; r++ {
		a.answers[r] = overloaded(r)
	}
	return a
}

// overloaded is the answer to a request refused for r: 503 unavailable with a reason that
// says overloaded (mmtp.md, Errors) and a hint to retry after a second.
func overloaded(r refusal) *codec.Response {
	var why string
	switch r {
	case refusedLimit:
		why = "gateway overloaded: requests in flight at the gateway's limit"
	case refusedConn:
		why = "gateway overloaded: this connection holds its share of the requests in flight"
	case refusedQueue:
		why = "gateway overloaded: the request waited too long in the gateway's queue"
	case refusedDeadline:
		why = "gateway overloaded: the request waited in the gateway's queue past its timeout"
	default:
		why = "gateway overloaded: no worker free"
	}
	resp := codec.ErrorResponse(http.StatusServiceUnavailable, codec.ErrUnavailable, why)
	resp.Header = append(resp.Header, codec.Field{Key: "retry-after", Value: "1"})
	return resp
}

// admit takes a slot for one request of a connection that holds `held` admitted requests
// already. It returns admitted, or the refusal to answer at once. Under the limit every
// request goes: with room to spare, an uneven spread over connections hurts nobody. At the
// limit, a connection below its fair share, limit/(active connections), may still go, up
// to limit/4 (at least 1) over, and one at or over its share is refused: a connection
// with 64 streams cannot lock out a thousand with one each, and a newcomer finds room.
// An adaptive limit counts double while nothing was refused for burstQuiet: a burst
// below capacity (clients that stalled and send what they held) drains in milliseconds,
// and refusing it turns a good queue into errors (CoDel's point); past capacity the first
// refusal makes the limit strict again, within milliseconds of the overload's start.
func (a *admission) admit(held int) refusal {
	n := a.inFlight.Add(1)
	if !a.off {
		if lim := a.limit.Load(); n > lim {
			now := a.clock() // one read for the burst's test and the refusal's time
			if !a.fixed && a.quiet(now) {
				lim = min(2*lim, a.max) // a burst
			}
			if n > lim && int64(held) >= max(1, lim/max(1, a.active.Load())) {
				a.inFlight.Add(-1)
				return a.refuseAt(refusedConn, now)
			}
			if n > lim+max(1, lim/4) {
				a.inFlight.Add(-1)
				return a.refuseAt(refusedLimit, now)
			}
		}
	}
	if held == 0 {
		a.active.Add(1)
	}
	for p := a.winPeak.Load(); n > p && !a.winPeak.CompareAndSwap(p, n); p = a.winPeak.Load() {
	}
	a.counts[admitted].Add(1)
	a.m.admitted.Inc()
	return admitted
}

func (a *admission) refuse(r refusal) refusal { return a.refuseAt(r, a.clock()) }

// refuseAt counts a refusal at now (clock).
func (a *admission) refuseAt(r refusal, now int64) refusal {
	a.lastRefused.Store(now)
	a.counts[r].Add(1)
	a.m.refused[r].Inc()
	return r
}

// burstQuiet is how long nothing must have been refused for a burst over the adaptive
// limit to go in (admit): longer than a burst takes to drain at the limit, shorter than
// the first window of an overload.
const burstQuiet = 50 * time.Millisecond

// quiet reports whether nothing was refused for burstQuiet before now (clock).
func (a *admission) quiet(now int64) bool { return now-a.lastRefused.Load() > int64(burstQuiet) }

// clock is the monotonic time in ns since base: the time base of windows and refusals.
func (a *admission) clock() int64 { return int64(time.Since(a.base)) }

// done gives back an admitted request's slot.
func (a *admission) done() { a.inFlight.Add(-1) }

// connIdle: a connection's last admitted request is done. idleFn is it as a func value,
// made once: a method value taken per request is an allocation per request.
func (a *admission) connIdle() { a.active.Add(-1) }

// started is called as an admitted request starts (its task, or on the reactor worker),
// received being when the reactor saw its bytes ready. It feeds the wait to the limit and
// returns refusedQueue when the request is to be shed unserved. A request served inline
// comes with its Started time, from the clock read of its ReadyAt (the session's stamp).
func (a *admission) started(req *codec.Request) refusal {
	now := req.Started
	if now.IsZero() {
		now = time.Now()
		req.Started = now
	}
	wait := now.Sub(req.Received)
	a.m.queue.Update(wait.Seconds())
	a.winSum.Add(int64(wait))
	n := a.winN.Add(1)
	a.maybeClose(now, n) // also when no backend answers (all of them time out or refuse)
	if !a.off && a.standing.Load() && wait > a.shedAfter {
		return a.refuse(refusedQueue)
	}
	return admitted
}

// finished is called as a backend's answer to an admitted request comes (or its
// timeout: the strongest sign of a queue), took after its bytes were seen ready: the
// latency the limit follows. Answers the gateway makes itself (a 401, a 404, a 503 for a backend that
// refuses connections) take microseconds and are left out: one burst of them would set a
// baseline no backend answer could come near.
func (a *admission) finished(now, received time.Time) {
	a.winLat.Add(int64(now.Sub(received)))
	a.maybeClose(now, a.winLatN.Add(1))
}

// maybeClose closes the window when it is due and n samples of one kind came in it.
func (a *admission) maybeClose(now time.Time, n int64) {
	t := int64(now.Sub(a.base))
	if t-a.winStart.Load() >= int64(admissionWindow) && n >= admissionMinSamples && a.mu.TryLock() {
		a.closeWindow(t)
		a.mu.Unlock()
	}
}

// closeWindow ends the current window at t (ns since base) and moves the limit. Called
// under mu.
func (a *admission) closeWindow(t int64) {
	if t-a.winStart.Load() < int64(admissionWindow) {
		return // another request closed it first
	}
	if t-a.winStart.Load() > int64(staleAfter) {
		a.idleReset(t) // no window closed for long: the load of then tells nothing of now
	}
	a.winStart.Store(t)
	sum, n := a.winSum.Swap(0), a.winN.Swap(0)
	lsum, ln := a.winLat.Swap(0), a.winLatN.Swap(0)
	peak := a.winPeak.Swap(a.inFlight.Load())
	var wait int64
	if n > 0 {
		wait = sum / n
	}
	a.lastWait.Store(wait)
	a.standing.Store(wait > a.target)
	over := a.sustained.update(t, a.refusedShare())
	a.overloaded.Store(over)
	lat, allowed := 0.0, math.Inf(1)
	if ln > 0 {
		lat = float64(lsum / ln)
		base := float64(a.baseLat.Load())
		if over && base > 0 {
			base = min(base, lat) // a queue the gateway refuses in front of is not a slower backend
		} else {
			base = nextBaseline(base, lat)
		}
		a.lastLat.Store(int64(lat))
		a.baseLat.Store(int64(base))
		allowed = allowedLatency(base, float64(a.target))
	}
	if a.off || a.fixed {
		return
	}
	if a.probe(t, lat, ln > 0, over) || ln <= 0 && wait <= a.target {
		return
	}
	a.est = nextLimit(a.est, lat, allowed, float64(wait), float64(a.target), float64(peak), float64(a.min), float64(a.max))
	a.limit.Store(int64(a.est))
}

// baselineRise is the share of the gap to a higher window average the latency baseline
// closes per window: half of it in about 140 windows (14 s). Slower, and one window of
// fast answers (a cache, one API's burst) held the limit down for minutes; faster, and a
// queue that builds over a few seconds would become the baseline it is measured against.
const baselineRise = 0.005

// nextBaseline is one window's step of the latency baseline: the window's average when
// it is lower (or the first), else a step towards it.
func nextBaseline(base, lat float64) float64 {
	if base <= 0 || lat < base {
		return lat
	}
	return base + (lat-base)*baselineRise
}

// allowedLatency is the latency over which a window shrinks the limit: twice the
// baseline, and at least the baseline plus target (sub-millisecond answers jitter by
// more than their own length).
func allowedLatency(base, target float64) float64 {
	return max(2*base, base+target)
}

// absorb lets a known burst in: what a pause held back (a hot upgrade's handover, which
// stops reading every connection for a moment) arrives at once when reading resumes, and
// is a backlog, not a sign of overload. The adaptive limit starts from at least n (within
// its bounds); the next windows bring it down if the waits say the box cannot keep up.
func (a *admission) absorb(n int64) {
	if a.off || a.fixed {
		return
	}
	a.mu.Lock()
	// A probe under way would put back the limit from before, and one due would start
	// as the backlog arrives: the backlog is no time to measure the baseline.
	a.sustained.probing = false
	a.sustained.seen = a.clock()
	a.est = min(max(a.est, float64(n)), float64(a.max))
	a.limit.Store(int64(a.est))
	a.mu.Unlock()
}

// nextLimit is one window's step of the adaptive limit. Over the allowed latency shrink
// by the gradient allowed/latency (at most halved, smoothed). The average wait (bytes
// ready to start) is the reactor's own queue: it grows when the gateway's core is
// saturated (or taken by others), whatever the backends do, so it catches a queue the
// latency baseline has grown used to, or never saw the bottom of (a gateway that starts
// under overload). Over its target it shrinks the limit by target/wait when the limit
// binds (the steeper gradient wins), and holds it otherwise: with the limit not reached,
// what the reactor waits for is not requests the limit let in, and a limit shrunk for it
// would starve slow backends later. Otherwise grow by sqrt(limit) when the window came
// near the limit (the limit, not the load, was what bound); else hold.
func nextLimit(est, latency, allowed, wait, target, peak, lo, hi float64) float64 {
	binds := peak >= 0.8*est
	g := 1.0
	if latency > allowed {
		g = allowed / latency
	}
	if wait > target && binds {
		g = min(g, target/wait)
	}
	switch {
	case g < 1:
		g = max(0.5, g)
		est = est*(1-admissionSmoothing) + est*g*admissionSmoothing
	case wait > target:
		// a queue stands: no growth
	case binds:
		est += max(1, math.Sqrt(est))
	}
	return min(max(est, lo), hi)
}

// AdmissionStats is the admission part of /v1/stats.
type AdmissionStats struct {
	Off      bool              `json:"off"`
	Adaptive bool              `json:"adaptive"`
	Limit    int64             `json:"limit"`
	InFlight int64             `json:"in_flight"`
	Active   int64             `json:"active_connections"`
	Admitted uint64            `json:"admitted_total"`
	Refused  map[string]uint64 `json:"refused_total"`
	// QueueWaitMs is the average wait of the requests that started in the last window,
	// from their bytes seen ready to their start: the reactor's queue (and the request
	// pool's, for request tasks).
	QueueWaitMs float64 `json:"queue_wait_ms"`
	// LatencyMs is the last window's average latency, bytes ready to answer, of admitted
	// requests; BaselineMs the baseline it is compared with.
	LatencyMs  float64 `json:"latency_ms"`
	BaselineMs float64 `json:"baseline_ms"`
	Standing   bool    `json:"queue_standing"`
	// Overloaded says the gateway refuses for good (over a tenth of its requests,
	// smoothed over windows): meanwhile the latency baseline does not rise.
	Overloaded bool `json:"overloaded"`
	// Probes counts the baseline probes: overloaded with a baseline not seen for 10 s
	// (or never: a second in), the limit drops to 16 until the queue has drained, and
	// the next window's latency is the baseline.
	Probes uint64 `json:"baseline_probes_total"`
	Panics uint64 `json:"request_panics_total"`
}

func (a *admission) stats() AdmissionStats {
	s := AdmissionStats{Off: a.off, Adaptive: !a.off && !a.fixed, Limit: a.limit.Load(), InFlight: a.inFlight.Load(),
		Active: a.active.Load(), Admitted: a.counts[admitted].Load(), Refused: map[string]uint64{},
		QueueWaitMs: float64(a.lastWait.Load()) / 1e6, Standing: a.standing.Load(), Panics: a.m.panics.Get(),
		LatencyMs: float64(a.lastLat.Load()) / 1e6, BaselineMs: float64(a.baseLat.Load()) / 1e6,
		Overloaded: a.isOverloaded(), Probes: a.m.probes.Get()}
	for r := refusedLimit; r < nRefusals; r++ {
		s.Refused[r.String()] = a.counts[r].Load()
	}
	return s
}

// submit runs serve as the request task of an admitted request. It is the one place a
// request task begins, and reply (built here, given to serve) the one place a request
// ends:
//   - a request shed at its start (started) is answered with answer, unserved;
//   - serve calls reply exactly once, on the task's goroutine or later on another (an
//     API call's answer comes on the reactor worker that read the backend's): reply gives
//     back the admission slot and runs done before answer writes, so a client that sends
//     its next request as soon as it reads this answer finds the slot free, then ends the
//     drain's count. reply(nil) means serve wrote the answer itself (a streamed proxy
//     answer). Calls after the first do nothing;
//   - a panic in serve is recovered here (and in a continuation, by recoverRequest),
//     logged with its stack, counted, and answered 500 internal if nothing was yet.
//
// When the pool takes no task, the request is answered 503 on the caller's goroutine.
func (g *Gateway) submit(req *codec.Request, serve func(reply func(*codec.Response)), answer func(*codec.Response), done func()) {
	reply := g.newReply(answer, done)
	err := g.reqPool.Submit(func() {
		req.Started = time.Time{} // it starts now, whatever its session stamped (started)
		g.run(req, serve, reply)
	})
	if err != nil {
		g.adm.refuse(refusedPool)
		reply(g.adm.answers[refusedPool])
	}
}

// newReply begins a request for the drain's count and returns the function that ends it
// (submit says how).
func (g *Gateway) newReply(answer func(*codec.Response), done func()) func(*codec.Response) {
	r := &replyOnce{g: g, answer: answer, done: done}
	g.begin()
	return r.reply
}

// replyOnce is what newReply's func does, for a request whose state holds it (an API
// call served inline, callAPI) instead of a func made for it.
type replyOnce struct {
	g       *Gateway
	answer  func(*codec.Response)
	done    func()
	replied atomic.Bool
}

func (r *replyOnce) reply(resp *codec.Response) {
	if !r.replied.CompareAndSwap(false, true) {
		return
	}
	defer r.g.end() // also when answer panics: the drain must not wait for it
	r.g.adm.done()
	if r.done != nil {
		r.done()
	}
	if resp != nil {
		r.answer(resp)
	}
}

// callAPI serves an admitted API call (serveAPI), as serveAdmitted says. Inline, the
// call's state is its reply (apiCall.once) and its runner (run's steps, spelled out so
// that no func value is made per call).
func (g *Gateway) callAPI(req *codec.Request, answer func(*codec.Response), done func()) {
	if !g.inline {
		g.submit(req, func(reply func(*codec.Response)) { g.serveAPI(req, reply) }, answer, done)
		return
	}
	c := &apiCall{g: g, req: req, once: replyOnce{g: g, answer: answer, done: done}}
	g.begin()
	defer g.recoverRequest(req, c.respond)
	if g.startOrShed(req, c.respond) {
		c.serve()
	}
}

// serveAdmitted serves an admitted request that waits for nothing but its backend (an API call,
// a proxied request with its body whole). It runs right here, on the reactor worker that
// decoded it, when no filter of this gateway can block (inline): the backend's answer
// comes back through the reactor (upstream.CallAsync, ForwardAsync), so a task would
// only add a goroutine hand-off per request and a goroutine per request queued for the
// CPU. Filters that call a fleet's Redis do wait, and run as a request task (submit).
func (g *Gateway) serveAdmitted(req *codec.Request, serve func(reply func(*codec.Response)), answer func(*codec.Response), done func()) {
	if !g.inline {
		g.submit(req, serve, answer, done)
		return
	}
	g.run(req, serve, g.newReply(answer, done))
}

// run starts an admitted request where it stands (a task, or the reactor worker): shed
// unserved when it waited in a standing queue too long (started), else served.
func (g *Gateway) run(req *codec.Request, serve func(reply func(*codec.Response)), reply func(*codec.Response)) {
	defer g.recoverRequest(req, reply)
	if g.startOrShed(req, reply) {
		serve(reply)
	}
}

// startOrShed says whether an admitted request is to be served; one that waited in a standing
// queue too long (started) is answered unserved instead.
func (g *Gateway) startOrShed(req *codec.Request, reply func(*codec.Response)) bool {
	if r := g.adm.started(req); r != admitted {
		reply(g.adm.answers[r])
		return false
	}
	return true
}

// recoverRequest, deferred where a request's code runs, turns a panic into a logged,
// counted 500 for the request (reply ignores it when the request was answered already).
func (g *Gateway) recoverRequest(req *codec.Request, reply func(*codec.Response)) {
	p := recover()
	if p == nil {
		return
	}
	g.m.adm.panics.Inc()
	g.log.Error("request task panicked", "listener", req.Conn.Listener, "operation", req.Operation,
		"target", req.Target, "panic", p, "stack", string(debug.Stack()))
	reply(codec.ErrorResponse(http.StatusInternalServerError, codec.ErrInternal, "internal error"))
}

// waited is how long req has waited for its backend since its bytes came. Served inline,
// nothing between its start and now can wait (no filter blocks), so its start stands in
// for now and spares a clock read; else the receive filters' time counts too.
func (g *Gateway) waited(req *codec.Request) time.Duration {
	if !g.inline || req.Started.IsZero() {
		return time.Since(req.Received)
	}
	return req.Started.Sub(req.Received)
}

// callStart is when a call to a backend begins, prev being the request's previous call's
// start (zero for the first). Served inline, nothing between the request's start and its
// first call can wait (waited), so that start stands in for the clock; a fallback's call
// comes after a backend's answer or timeout, and reads the clock.
func (g *Gateway) callStart(req *codec.Request, prev time.Time) time.Time {
	if g.inline && prev.IsZero() && !req.Started.IsZero() {
		return req.Started
	}
	return clock.From(req.Received)
}

// answered accounts for the outcome of a call to a backend begun at t0, err its failure:
// it came at arrived (the answer's whole arrival, stamped as it was read), else now (one
// monotonic clock read). The call's time adds to x's upstream latency, and an answer or a
// timeout feeds admission the request's latency. It returns when the outcome came.
func (g *Gateway) answered(req *codec.Request, x *filters.Exchange, t0, arrived time.Time, err error) time.Time {
	now := arrived
	if now.IsZero() {
		now = clock.From(t0)
	}
	x.UpstreamLatency += now.Sub(t0)
	if err == nil || timedOut(err) {
		g.adm.finished(now, req.Received)
	}
	return now
}

// took is how long req took until its answer, for its duration metric: until end, when a
// backend's answer came, if it was served inline (its send filters cannot wait either),
// else until now.
func (g *Gateway) took(req *codec.Request, end time.Time) time.Duration {
	if end.IsZero() || !g.inline {
		end = clock.From(req.Received)
	}
	return end.Sub(req.Received)
}

// pastDeadline answers a request that waited longer than timeout since its bytes came:
// its caller has given up or is about to, so the backend is not called for it.
func (g *Gateway) pastDeadline(req *codec.Request, timeout time.Duration) *codec.Response {
	if timeout <= 0 || g.adm.off || g.waited(req) <= timeout {
		return nil
	}
	g.adm.refuse(refusedDeadline)
	return overloaded(refusedDeadline) // fresh: the send phase of the filters may edit it
}
