package gateway

import (
	"bufio"
	"context"
	"github.com/VictoriaMetrics/metrics"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/builtin"
)

// boom is a filter that panics on the operation demo.boom (and on POST /boom for the
// proxy path), and lets everything else through.
type boom struct{}

func (boom) Name() string { return "boom" }
func (boom) Receive(_ context.Context, req *codec.Request, _ *filters.Exchange) *codec.Response {
	if req.Operation == "demo.boom" || strings.HasPrefix(req.Target, "/boom") {
		panic("boom: a filter bug")
	}
	return nil
}
func (boom) Send(context.Context, *codec.Request, *codec.Response, *filters.Exchange) {}

// startGateway runs an in-process gateway on loopback (port 0) with the demo backend, an
// MMTP and an HTTP listener, both with the boom filter, and the admission block given.
func startGateway(t *testing.T, admission string, logs io.Writer) *Gateway {
	t.Helper()
	reg := builtin.NewRegistry()
	if err := reg.Register("boom", func(*filters.Env) (filters.Filter, error) { return boom{}, nil }); err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	return runGateway(t, `
admission: `+admission+`
demo: {enabled: true}
listeners:
  - {name: mobile, listen: "127.0.0.1:0", protocol: mmtp, filters: [boom]}
  - {name: web, listen: "127.0.0.1:0", protocol: http1, filters: [boom]}
clusters:
  - {name: demo, hosts: ["@demo"], timeout: 5s}
routes:
  - {api: demo.*, split: {demo: 100}}
  - {path: /, split: {demo: 100}}
`, Options{Filters: reg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRequestTaskPanic: a panic in a request task is answered 500 internal, logged with its
// stack and counted; the connection goes on serving and the drain does not wait for it.
func TestRequestTaskPanic(t *testing.T) {
	logs := &syncBuf{}
	g := startGateway(t, "{}", logs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := dialMMTP(t, g.Addr("mobile").String())
	resp, err := c.Call(ctx, "demo.boom", nil, []byte("x"))
	if err != nil {
		t.Fatalf("MMTP call that panics: %v (never answered)", err)
	}
	if resp.Status != 500 || resp.Header.Value("error") != codec.ErrInternal {
		t.Fatalf("MMTP panic answered %d %q %q, want 500 internal", resp.Status, resp.Header.Value("error"), resp.Body)
	}
	if resp, err = c.Call(ctx, "demo.echo", nil, []byte("still here")); err != nil || resp.Status != 200 || string(resp.Body) != "still here" {
		t.Fatalf("MMTP call after the panic: %v %+v", err, resp)
	}

	// HTTP: an API call and a proxied one that panic, then a call, on one connection.
	hc, err := net.Dial("tcp", g.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	hc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(hc)
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"POST /api/demo.boom HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 500},
		{"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500},
		{"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok", 200},
	} {
		if _, err := io.WriteString(hc, tc.req); err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v (never answered)", tc.req, err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != tc.status {
			t.Fatalf("%q answered %d %q, want %d", tc.req, r.StatusCode, body, tc.status)
		}
		if tc.status == 500 && r.Header.Get("Error") != codec.ErrInternal {
			t.Errorf("%q: error header %q, want %q", tc.req, r.Header.Get("Error"), codec.ErrInternal)
		}
	}

	if n := g.m.adm.panics.Get(); n != 3 {
		t.Errorf("mgw_request_panics_total = %d, want 3", n)
	}
	// The answer is written before its task lets go of its slot: wait for the let-go.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if s := g.Stats(); s.InFlight == 0 && s.Admission.InFlight == 0 && s.Admission.Active == 0 {
			break
		}
	}
	if s := g.Stats(); s.InFlight != 0 || s.Admission.InFlight != 0 || s.Admission.Active != 0 || s.Admission.Panics != 3 {
		t.Errorf("after the panics: in_flight %d, admission %+v; want nothing held", s.InFlight, s.Admission)
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "request task panicked") ||
		!strings.Contains(out, "boom: a filter bug") || !strings.Contains(out, "admission_test.go") {
		t.Errorf("panic not logged at error level with its stack:\n%s", out)
	}
	// Nothing is left in flight: the drain ends as soon as the connections close, well
	// before this deadline (before the fix it waited it out and failed).
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := g.Drain(dctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// mmtpBurst sends n REQUESTs for op with body on one new connection at once and returns
// their answers in the order they arrived.
func mmtpBurst(t *testing.T, addr, op, body string, n int) []*codec.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dialMMTP(t, addr)
	var mu sync.Mutex
	var out []*codec.Response
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Call(ctx, op, nil, []byte(body))
			if err != nil {
				t.Errorf("%s: %v", op, err)
				return
			}
			mu.Lock()
			out = append(out, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func overloadReason(r *codec.Response) bool {
	return r.Status == 503 && r.Header.Value("error") == codec.ErrUnavailable &&
		strings.Contains(string(r.Body), "overloaded") && r.Header.Value("retry-after") == "1"
}

// TestAdmissionLimitRefusesAtOnce: over the gateway-wide limit a request is answered 503
// unavailable, overloaded, at once: the refusals arrive before any admitted request (each
// sleeps 300 ms at the backend) is answered.
func TestAdmissionLimitRefusesAtOnce(t *testing.T) {
	g := startGateway(t, "{limit: 4}", nil)
	// One connection, twelve requests: a lone connection's share is the whole limit.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all [][]*codec.Response
	for range 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := mmtpBurst(t, g.Addr("mobile").String(), "demo.sleep", "300", 12)
			mu.Lock()
			all = append(all, rs)
			mu.Unlock()
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, rs := range all {
		seenOK := false
		for _, r := range rs {
			switch {
			case r.Status == 200:
				ok++
				seenOK = true
			case overloadReason(r):
				refused++
				if seenOK {
					t.Errorf("a refusal came after an admitted request's answer on its connection")
				}
			default:
				t.Errorf("answer %d %q %q", r.Status, r.Header.Value("error"), r.Body)
			}
		}
	}
	if ok != 4 || refused != 8 {
		t.Errorf("ok %d refused %d, want 4 and 8 (limit 4 of 12)", ok, refused)
	}
	st := g.Stats().Admission
	if st.Refused["limit"]+st.Refused["connection"] != 8 || st.Admitted != 4 || st.Limit != 4 || st.Adaptive {
		t.Errorf("stats %+v", st)
	}
	// HTTP: the same refusal carries Retry-After. An HTTP connection holds one request at
	// a time, below its share: limit 1 admits one more over the limit, then refuses.
	g2 := startGateway(t, "{limit: 1}", nil)
	var sleeps sync.WaitGroup
	for range 2 {
		sleeps.Add(1)
		go func() {
			defer sleeps.Done()
			r, err := http.Post("http://"+g2.Addr("web").String()+"/api/demo.sleep", "text/plain", strings.NewReader("500"))
			if err == nil {
				r.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for g2.adm.inFlight.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r, err := http.Post("http://"+g2.Addr("web").String()+"/api/demo.echo", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 503 || r.Header.Get("Retry-After") != "1" || r.Header.Get("Error") != codec.ErrUnavailable ||
		!strings.Contains(string(body), "overloaded") {
		t.Errorf("HTTP over the limit: %d %v %q", r.StatusCode, r.Header, body)
	}
	sleeps.Wait()
}

// TestAdmissionFairShare: under pressure one connection cannot hold the whole limit; a
// connection that comes later is still admitted.
func TestAdmissionFairShare(t *testing.T) {
	g := startGateway(t, "{limit: 8}", nil)
	addr := g.Addr("mobile").String()
	heavy := make(chan []*codec.Response)
	go func() { heavy <- mmtpBurst(t, addr, "demo.sleep", "500", 12) }()
	// Alone, the heavy connection may take the whole limit (8); at the limit it holds its
	// share, so the rest (4) is refused for it, and a newcomer below its share goes.
	deadline := time.Now().Add(5 * time.Second)
	for g.adm.counts[refusedConn].Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	light := mmtpBurst(t, addr, "demo.sleep", "10", 1)
	if len(light) != 1 || light[0].Status != 200 {
		t.Fatalf("the light connection was not served: %+v", light)
	}
	ok, refused := 0, 0
	for _, r := range <-heavy {
		if r.Status == 200 {
			ok++
		} else if overloadReason(r) && strings.Contains(string(r.Body), "share") {
			refused++
		}
	}
	if ok != 8 || refused != 4 {
		t.Errorf("heavy connection: ok %d refused %d, want 8 and 4", ok, refused)
	}
}

// TestMalformedBeforeAdmission: a request without operation-type is answered 400 even
// when admission would refuse it: what is wrong with it is not the gateway's load.
func TestMalformedBeforeAdmission(t *testing.T) {
	g := startGateway(t, "{limit: 1}", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := dialMMTP(t, g.Addr("mobile").String())
	go c.Call(ctx, "demo.sleep", nil, []byte("500"))
	for g.adm.inFlight.Load() < 1 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if r, err := c.Call(ctx, "demo.echo", nil, []byte("x")); err != nil || !overloadReason(r) {
		t.Fatalf("a well-formed call over the limit: %v %+v, want 503 overloaded", err, r)
	}
	r, err := c.Call(ctx, "", nil, []byte("x"))
	if err != nil || r.Status != 400 || r.Header.Value("error") != codec.ErrBadRequest {
		t.Fatalf("a call without operation-type over the limit: %v %+v, want 400 bad_request", err, r)
	}
}

// TestAdmissionAdaptiveLimit steps the limit the way windows do: it shrinks while the
// latency is over the allowed one, or the wait for the reactor over its target; grows
// while the limit binds and neither is; holds when the load is under it; and stays within
// its floor and ceiling.
func TestAdmissionAdaptiveLimit(t *testing.T) {
	const allowed, target = float64(4 * time.Millisecond), float64(2 * time.Millisecond)
	fine, waitFine := allowed/2, target/4
	for _, over := range []struct {
		name      string
		lat, wait float64
	}{{"latency 4x the allowed", 4 * allowed, waitFine}, {"wait 4x its target", fine, 4 * target}} {
		est := 200.0
		for range 50 {
			est = nextLimit(est, over.lat, allowed, over.wait, target, est, 16, 1000)
		}
		if est != 16 {
			t.Errorf("after 50 windows with %s: limit %v, want the floor 16", over.name, est)
		}
	}
	est := 16.0
	prev := est
	est = nextLimit(est, fine, allowed, waitFine, target, est, 16, 1000)
	if est <= prev {
		t.Errorf("binding, no wait: limit %v did not grow from %v", est, prev)
	}
	for range 200 {
		est = nextLimit(est, fine, allowed, waitFine, target, est, 16, 1000)
	}
	if est != 1000 {
		t.Errorf("binding for 200 windows: limit %v, want the ceiling 1000", est)
	}
	if got := nextLimit(300, fine, allowed, waitFine, target, 10, 16, 1000); got != 300 {
		t.Errorf("load far under the limit: limit %v, want it held at 300", got)
	}
	// A window with a wait just over its target does not grow the limit; it shrinks it
	// only when the limit binds.
	if got := nextLimit(300, fine, allowed, 1.1*target, target, 300, 16, 1000); got >= 300 {
		t.Errorf("binding with the wait over its target: limit %v, want it below 300", got)
	}
	if got := nextLimit(300, fine, allowed, 4*target, target, 100, 16, 1000); got != 300 {
		t.Errorf("not binding (100 of 300 in flight), the wait 4x its target: limit %v, want it held at 300", got)
	}
	// One noisy window moves it by at most a tenth.
	if got := nextLimit(300, 100*allowed, allowed, 100*target, target, 300, 16, 1000); got < 270 {
		t.Errorf("one window of a huge latency and wait: %v, want at least 270", got)
	}
}

// TestAdmissionFollowsTheReactorQueue: windows whose requests waited for the reactor over
// the target bring the limit down even when the latency baseline has grown used to the
// queue (a gateway that started under overload never saw its bottom), and also when no
// backend answers at all.
func TestAdmissionFollowsTheReactorQueue(t *testing.T) {
	cfg := config.Admission{MinLimit: 16, MaxLimit: 1000, QueueTarget: config.Duration(2 * time.Millisecond)}
	a := newAdmission(cfg, 10000, newAdmissionMetrics(metrics.NewSet()))
	a.absorb(500)
	for range 40 {
		for range admissionMinSamples {
			a.winSum.Add(int64(8 * time.Millisecond)) // waited 8ms for the reactor
			a.winN.Add(1)
			a.winLat.Add(int64(20 * time.Millisecond)) // at the baseline: latency says nothing
			a.winLatN.Add(1)
		}
		a.winPeak.Store(a.limit.Load())
		a.mu.Lock()
		a.closeWindow(a.winStart.Load() + int64(admissionWindow))
		a.mu.Unlock()
	}
	if got := a.limit.Load(); got != 16 {
		t.Errorf("40 windows waiting 4x the target at a steady latency: limit %d, want the floor 16", got)
	}
	if st := a.stats(); !st.Standing || st.QueueWaitMs != 8 {
		t.Errorf("stats: standing %v, queue wait %vms; want true and 8", st.Standing, st.QueueWaitMs)
	}

	silent := newAdmission(cfg, 10000, newAdmissionMetrics(metrics.NewSet()))
	silent.absorb(500)
	for range 40 {
		for range admissionMinSamples {
			silent.winSum.Add(int64(8 * time.Millisecond))
			silent.winN.Add(1)
		}
		silent.winPeak.Store(silent.limit.Load()) // at the limit, nothing answered
		silent.mu.Lock()
		silent.closeWindow(silent.winStart.Load() + int64(admissionWindow))
		silent.mu.Unlock()
	}
	if got := silent.limit.Load(); got != 16 {
		t.Errorf("40 windows waiting 4x the target, no answers: limit %d, want the floor 16", got)
	}
}

// TestAdmissionFollowsLatency runs windows of answered requests through the limit: it
// grows while requests are answered near their baseline latency and the limit binds,
// shrinks to the floor once latency stays several times the baseline (a queue formed
// somewhere), and a backend that is slow from the start is not taken for a queue.
func TestAdmissionFollowsLatency(t *testing.T) {
	window := func(a *admission, lat time.Duration) { closeTestWindow(a, lat, 0) }
	cfg := config.Admission{MinLimit: 16, MaxLimit: 1000, QueueTarget: config.Duration(2 * time.Millisecond)}
	a := newAdmission(cfg, 10000, newAdmissionMetrics(metrics.NewSet()))
	for range 20 {
		window(a, time.Millisecond)
	}
	grown := a.limit.Load()
	if grown <= 16 {
		t.Fatalf("binding at the baseline latency for 20 windows: limit %d did not grow", grown)
	}
	for range 40 {
		window(a, 30*time.Millisecond)
	}
	if got := a.limit.Load(); got != 16 {
		t.Errorf("40 windows at 30x the baseline: limit %d, want the floor 16", got)
	}
	if st := a.stats(); st.BaselineMs > 10 || st.LatencyMs != 30 {
		t.Errorf("stats: baseline %vms latency %vms, want under 10 (rising slowly from 1) and 30", st.BaselineMs, st.LatencyMs)
	}

	slow := newAdmission(cfg, 10000, newAdmissionMetrics(metrics.NewSet()))
	for range 40 {
		window(slow, 300*time.Millisecond)
	}
	if got := slow.limit.Load(); got <= 16 {
		t.Errorf("a backend that takes 300ms from the start: limit %d, want it grown past the floor", got)
	}
	if got := nextBaseline(100, 1000); got <= 100 || got > 105 {
		t.Errorf("baseline 100 after a window of 1000: %v, want a step of under 1%% of the gap", got)
	}

	// One window of answers far faster than the backend's usual 20ms (a cache, one fast
	// API's burst) sets the baseline low; the limit comes down, and back within a minute.
	healthy := newAdmission(config.Admission{MinLimit: 128, MaxLimit: 10000, QueueTarget: config.Duration(2 * time.Millisecond)},
		10000, newAdmissionMetrics(metrics.NewSet()))
	for range 300 {
		window(healthy, 20*time.Millisecond)
	}
	before := healthy.limit.Load()
	window(healthy, 50*time.Microsecond)
	for range 600 {
		window(healthy, 20*time.Millisecond)
	}
	if got := healthy.limit.Load(); got < before/2 {
		t.Errorf("a minute after one fast window: limit %d, was %d", got, before)
	}
}

// TestAdmissionWindowsCloseWithoutAnswers: with no backend answering (all time out, or
// refuse connections), windows still close on the requests that start, so a standing
// queue that went away stops shedding.
func TestAdmissionWindowsCloseWithoutAnswers(t *testing.T) {
	a := newAdmission(config.Admission{MinLimit: 16, QueueTarget: config.Duration(2 * time.Millisecond), ShedAfter: config.Duration(time.Second)},
		10000, newAdmissionMetrics(metrics.NewSet()))
	a.standing.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for a.standing.Load() && time.Now().Before(deadline) {
		a.started(&codec.Request{Received: time.Now()})
		time.Sleep(time.Millisecond)
	}
	if a.standing.Load() {
		t.Fatal("the queue still stands after 2s of requests that waited nothing, with no answers")
	}
}

// TestAdmissionSheds: a request that waited past its route's timeout is answered 503
// without calling the backend; while the queue stands, one that waited past shed_after is
// shed when its task starts.
func TestAdmissionSheds(t *testing.T) {
	g := startGateway(t, "{}", nil)
	req := &codec.Request{Operation: "demo.echo", Body: []byte("x"), Received: time.Now().Add(-6 * time.Second),
		Conn: codec.ConnInfo{Listener: "mobile"}}
	resp := g.handle(req)
	if !overloadReason(resp) || !strings.Contains(string(resp.Body), "past its timeout") {
		t.Fatalf("request older than its 5s timeout: %d %q", resp.Status, resp.Body)
	}
	if n := g.adm.counts[refusedDeadline].Load(); n != 1 {
		t.Errorf("deadline refusals %d, want 1", n)
	}
	req.Received = time.Now()
	if resp := g.handle(req); resp.Status != 200 {
		t.Fatalf("fresh request: %d %q", resp.Status, resp.Body)
	}

	// A standing queue: shed_after applies at the task's start.
	g.adm.standing.Store(true)
	var got *codec.Response
	served := false
	done := make(chan struct{})
	g.adm.admit(0)
	g.submit(&codec.Request{Operation: "demo.echo", Received: time.Now().Add(-time.Second)},
		func(func(*codec.Response)) { served = true }, func(r *codec.Response) { got = r; close(done) }, g.adm.connIdle)
	<-done
	if served || got == nil || !strings.Contains(string(got.Body), "waited too long") {
		t.Fatalf("in a standing queue, a request that waited 1s: served %v, answer %+v", served, got)
	}
	if g.adm.inFlight.Load() != 0 {
		t.Errorf("in flight %d after the shed, want 0", g.adm.inFlight.Load())
	}
}

// TestAdmissionAbsorb: after a pause (a hot upgrade's handover), the backlog it held back
// is let in: the adaptive limit starts from the number of connections resumed, within its
// bounds; a fixed limit is left alone.
func TestAdmissionAbsorb(t *testing.T) {
	a := newAdmission(config.Admission{MinLimit: 128, MaxLimit: 4096}, 10000, nil)
	if got := a.limit.Load(); got != 128 {
		t.Fatalf("starts at %d, want the floor 128", got)
	}
	a.absorb(1000)
	if got := a.limit.Load(); got != 1000 {
		t.Errorf("after absorbing 1000: limit %d", got)
	}
	a.absorb(18000)
	if got := a.limit.Load(); got != 4096 {
		t.Errorf("after absorbing 18000: limit %d, want the ceiling 4096", got)
	}
	a.absorb(10)
	if got := a.limit.Load(); got != 4096 {
		t.Errorf("a smaller burst lowered the limit to %d", got)
	}
	fixed := newAdmission(config.Admission{Limit: 64}, 10000, nil)
	fixed.absorb(1000)
	if got := fixed.limit.Load(); got != 64 {
		t.Errorf("a fixed limit moved to %d", got)
	}
}

// TestTaskStartsWhenItRuns: a request served as a task (a streamed proxied body, or a
// gateway whose filters wait) starts when its task does, whatever start its session
// stamped for inline serving: its wait in the request pool counts, and in a standing
// queue one that waited past shed_after is shed.
func TestTaskStartsWhenItRuns(t *testing.T) {
	g := startGateway(t, "{}", nil)
	g.adm.standing.Store(true)
	ready := time.Now().Add(-time.Second)
	var got *codec.Response
	served := false
	done := make(chan struct{})
	g.adm.admit(0)
	g.submit(&codec.Request{Operation: "demo.echo", Received: ready, Started: ready},
		func(reply func(*codec.Response)) { served = true; reply(&codec.Response{Status: 200}) },
		func(r *codec.Response) { got = r; close(done) }, g.adm.connIdle)
	<-done
	if served || got == nil || !strings.Contains(string(got.Body), "waited too long") {
		t.Fatalf("a task whose bytes were ready 1s ago, stamped as started then: served %v, answer %+v", served, got)
	}
}
