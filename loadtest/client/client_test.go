package client

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/openloop"
	"github.com/mgw-project/mgw/netpoll"
)

func engine(t *testing.T) netpoll.Engine {
	t.Helper()
	e, err := netpoll.New(netpoll.Config{Workers: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func mmtpServer(t *testing.T, secrets map[string]string) *testserver.MMTP {
	t.Helper()
	s, err := testserver.NewMMTP(secrets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// drive fires rate req/s for d across the client and waits for the answers.
func drive(t *testing.T, c *Client, rate float64, d time.Duration) {
	t.Helper()
	s, err := openloop.NewSchedule(openloop.Constant, rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	openloop.Run(context.Background(), s, time.Now(), d, c.Fire)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sn := c.Snapshot()
		if sn.OK+sn.TotalErrors() >= sn.Sent {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("answers missing: %+v", c.Snapshot())
}

// TestKnownLatency: a backend that sleeps exactly 30 ms. Every recorded latency is at least
// that, and the median sits just above it.
func TestKnownLatency(t *testing.T) {
	srv := mmtpServer(t, nil)
	rec := hist.NewRecorder()
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.sleep", Body: []byte("30")}, 8, engine(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	c.Ramp(context.Background(), 0, nil)
	if got := c.Snapshot().Open; got != 8 {
		t.Fatalf("open %d, want 8", got)
	}
	drive(t, c, 200, 500*time.Millisecond)
	h := rec.Total()
	if h.Count() != 100 || c.Snapshot().OK != 100 {
		t.Fatalf("count %d ok %d, want 100", h.Count(), c.Snapshot().OK)
	}
	if h.Min() < 30e6 {
		t.Fatalf("min latency %v below the backend's 30ms sleep", time.Duration(h.Min()))
	}
	// Generous: the point is that the median is the sleep, not a multiple of it.
	if p := h.Percentile(50); p > 30e6+150e6 {
		t.Fatalf("p50 %v far above the 30ms sleep", time.Duration(p))
	}
}

// TestStallChargedToLatency: the server answers nothing for 400 ms. An open-loop client
// keeps sending on schedule, so every request intended during the stall reports the part
// of the stall it waited: a closed-loop client would report one slow request instead.
func TestStallChargedToLatency(t *testing.T) {
	srv := mmtpServer(t, nil)
	rec := hist.NewRecorder()
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("x")}, 4, engine(t), rec)
	c.Ramp(context.Background(), 0, nil)
	srv.Stall(400 * time.Millisecond)
	drive(t, c, 500, 600*time.Millisecond) // 300 requests, 200 of them inside the stall
	h := rec.Total()
	if h.Count() != 300 {
		t.Fatalf("count %d", h.Count())
	}
	var over100ms uint64
	for _, b := range h.Buckets() {
		if b.Lo >= 100e6 {
			over100ms += b.Count
		}
	}
	// Requests intended in the first 300ms of the stall waited more than 100ms: 150 of them.
	if over100ms < 140 {
		t.Fatalf("%d requests over 100ms, want >= 140 (stall hidden: coordinated omission)", over100ms)
	}
	if h.Max() < 380e6 {
		t.Fatalf("max %v, want about the 400ms stall", time.Duration(h.Max()))
	}
}

// TestStallPastTimeoutChargedToLatency: a stall longer than the timeout. The requests it
// swallowed are timeouts, and they count in the latencies at the timeout: before, they
// were left out, and the answered few made a 1 s stall look like a 2 ms p99.
func TestStallPastTimeoutChargedToLatency(t *testing.T) {
	srv := mmtpServer(t, nil)
	rec := hist.NewRecorder()
	const timeout = 200 * time.Millisecond
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("x"), Timeout: timeout}, 4, engine(t), rec)
	c.Ramp(context.Background(), 0, nil)
	srv.Stall(time.Second)
	s, err := openloop.NewSchedule(openloop.Constant, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	openloop.Run(context.Background(), s, time.Now(), 500*time.Millisecond, c.Fire) // 100 requests, all in the stall
	time.Sleep(timeout + 100*time.Millisecond)
	c.Sweep(time.Now())
	sn := c.Snapshot()
	if sn.Errors[ErrTimeout] < 90 {
		t.Fatalf("%d timeouts, want about 100 (the stall is 1 s, the timeout %v): %+v", sn.Errors[ErrTimeout], timeout, sn)
	}
	h := rec.Total()
	if h.Count() < sn.Errors[ErrTimeout] || time.Duration(h.Percentile(50)) < timeout*99/100 {
		t.Fatalf("latencies: count %d p50 %v for %d timeouts; want each at the %v timeout", h.Count(),
			time.Duration(h.Percentile(50)), sn.Errors[ErrTimeout], timeout)
	}
}

// TestFireQueued: requests queued by FireQueued take their streams and go out at
// Flush, and every one is answered and timed from its intended time; a second round
// works the same (the batch is reset).
func TestFireQueued(t *testing.T) {
	srv := mmtpServer(t, nil)
	rec := hist.NewRecorder()
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("x")}, 4, engine(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	c.Ramp(context.Background(), 0, nil)
	for round := 1; round <= 2; round++ {
		intended := time.Now().Add(-20 * time.Millisecond) // late already, as a behind schedule is
		for range 40 {
			c.FireQueued(intended)
		}
		if got := len(c.pending); got != 4 {
			t.Fatalf("round %d: %d connections queued, want 4 (40 requests round robin over 4)", round, got)
		}
		for _, p := range c.pending {
			p.cn.mu.Lock()
			n := len(p.cn.inflight)
			p.cn.mu.Unlock()
			if n != 0 {
				t.Fatalf("round %d: %d streams taken before Flush", round, n)
			}
		}
		time.Sleep(50 * time.Millisecond)
		if sn := c.Snapshot(); sn.OK != uint64(40*(round-1)) {
			t.Fatalf("round %d: %d answered before Flush", round, sn.OK)
		}
		c.Flush()
		deadline := time.Now().Add(5 * time.Second)
		for c.Snapshot().OK < uint64(40*round) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if sn := c.Snapshot(); sn.OK != uint64(40*round) || sn.TotalErrors() != 0 {
			t.Fatalf("round %d after Flush: %+v, want %d answered", round, sn, 40*round)
		}
	}
	if h := rec.Total(); h.Count() != 80 || h.Min() < 70e6 {
		t.Fatalf("%d latencies, min %v: want 80, each at least the 20 ms late plus the 50 ms held",
			h.Count(), time.Duration(h.Min()))
	}
}

// TestFireQueuedConnClosedBeforeFlush: requests queued on connections that close before
// Flush never reached the gateway: they are not counted as closed under requests in
// flight, but go out again (answered on a connection the client opened since, or
// no_connection when there is none).
func TestFireQueuedConnClosedBeforeFlush(t *testing.T) {
	srv := mmtpServer(t, nil)
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("x")}, 4, engine(t), hist.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	c.Ramp(context.Background(), 0, nil)
	for range 40 {
		c.FireQueued(time.Now())
	}
	queuedOn := make([]*conn, 0, len(c.pending))
	for _, p := range c.pending {
		queuedOn = append(queuedOn, p.cn)
	}
	deadline := time.Now().Add(20 * time.Second) // generous: the whole suite may run beside it
	// The ramp ends when the client's connects do; the server may not have accepted them
	// all yet, and DropAll closes only what it has.
	for srv.Remotes()["127.0.0.1"] < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	srv.DropAll()
	for _, cn := range queuedOn {
		for !cn.closed.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	c.Flush()
	for {
		sn := c.Snapshot()
		if sn.OK+sn.Errors[ErrNoConn] == 40 {
			if sn.Errors[ErrClosed] != 0 || sn.Errors[ErrLost] != 0 || sn.Retried != 40 {
				t.Fatalf("%+v: want all 40 sent again (answered on a new connection or none found), none closed or lost", sn)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%+v: the 40 requests queued on closed connections were neither answered nor refused", sn)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSignedWithHello(t *testing.T) {
	srv := mmtpServer(t, map[string]string{"wallet": "s3cret"})
	rec := hist.NewRecorder()
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("hi"),
		AppID: "wallet", Secret: "s3cret", Hello: true}, 3, engine(t), rec)
	c.Ramp(context.Background(), 0, nil)
	if got := c.Snapshot().Open; got != 3 {
		t.Fatalf("open %d after signed HELLO: %+v", got, c.Snapshot())
	}
	drive(t, c, 250, 100*time.Millisecond)
	if sn := c.Snapshot(); sn.OK != 25 || sn.TotalErrors() != 0 {
		t.Fatalf("signed requests: %+v", sn)
	}
	// A wrong secret: the HELLO is refused and no connection counts as established.
	bad, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", AppID: "wallet", Secret: "nope", Hello: true}, 2, engine(t), hist.NewRecorder())
	bad.Ramp(context.Background(), 0, nil)
	if sn := bad.Snapshot(); sn.Open != 0 || sn.Errors[ErrHelloRefus] != 2 {
		t.Fatalf("bad secret: %+v", sn)
	}
}

func TestErrorsByKind(t *testing.T) {
	srv := mmtpServer(t, nil)
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "no.such.api"}, 2, engine(t), hist.NewRecorder())
	c.Ramp(context.Background(), 0, nil)
	drive(t, c, 100, 100*time.Millisecond)
	if sn := c.Snapshot(); sn.Errors["status_404"] != 10 || sn.OK != 0 {
		t.Fatalf("%+v", sn)
	}
	// Nothing listening: connect errors, counted per connection.
	c2, _ := New(Config{Target: "127.0.0.1:1", Protocol: "mmtp", API: "demo.echo"}, 3, engine(t), hist.NewRecorder())
	c2.Ramp(context.Background(), 0, nil)
	if sn := c2.Snapshot(); sn.Errors[ErrConnect] != 3 || sn.Open != 0 {
		t.Fatalf("%+v", sn)
	}
	c2.Fire(time.Now())
	if sn := c2.Snapshot(); sn.Errors[ErrNoConn] != 1 {
		t.Fatalf("%+v", sn)
	}
}

func TestTimeoutsAndReconnect(t *testing.T) {
	srv := mmtpServer(t, nil)
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.sleep", Body: []byte("2000"), Timeout: 50 * time.Millisecond},
		5, engine(t), hist.NewRecorder())
	c.Ramp(context.Background(), 0, nil)
	for i := 0; i < 5; i++ {
		c.Fire(time.Now())
	}
	time.Sleep(60 * time.Millisecond)
	c.Sweep(time.Now())
	if sn := c.Snapshot(); sn.Errors[ErrTimeout] != 5 {
		t.Fatalf("%+v", sn)
	}
	// The server drops everyone; the client notices and ramps back.
	srv.DropAll()
	deadline := time.Now().Add(5 * time.Second)
	for c.Snapshot().Open != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if sn := c.Snapshot(); sn.Open != 0 || sn.Errors["closed_peer_eof"]+sn.Errors["closed_peer_reset"] != 5 {
		t.Fatalf("after drop: %+v", sn)
	}
	c.Ramp(context.Background(), 0, nil)
	if sn := c.Snapshot(); sn.Open != 5 {
		t.Fatalf("after reconnect: %+v", sn)
	}
}

func TestSourceAddresses(t *testing.T) {
	srv := mmtpServer(t, nil)
	srcs := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	c, _ := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", SourceAddrs: srcs}, 6, engine(t), hist.NewRecorder())
	c.Ramp(context.Background(), 0, nil)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Conns.Load() != 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r := srv.Remotes(); r["127.0.0.2"] != 3 || r["127.0.0.3"] != 3 {
		t.Fatalf("remotes %v, want 3 from each source address", r)
	}
}

func TestHTTP(t *testing.T) {
	srv, err := testserver.NewHTTP()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := hist.NewRecorder()
	c, _ := New(Config{Target: srv.Addr(), Protocol: "http1", API: "demo.echo", Body: make([]byte, 1024)}, 4, engine(t), rec)
	c.Ramp(context.Background(), 0, nil)
	drive(t, c, 400, 250*time.Millisecond)
	if sn := c.Snapshot(); sn.OK != 100 || sn.TotalErrors() != 0 || rec.Total().Count() != 100 {
		t.Fatalf("%+v", sn)
	}
}

func TestParseResponseHead(t *testing.T) {
	st, cl, ch, err := parseResponseHead([]byte("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX: y"))
	if err != nil || st != 200 || cl != 12 || ch {
		t.Fatalf("%d %d %v %v", st, cl, ch, err)
	}
	_, _, ch, _ = parseResponseHead([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"))
	if !ch {
		t.Fatal("chunked not seen")
	}
	for _, bad := range []string{"SSH-2.0-OpenSSH", "HTTP/1.1 2x0 OK", "HTTP/1.1 200 OK\r\nnocolon", "HTTP/1.1 200 OK\r\nContent-Length: -1"} {
		if _, _, _, err := parseResponseHead([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestProbe(t *testing.T) {
	srv := mmtpServer(t, nil)
	if err := Probe(srv.Addr(), "mmtp", time.Second); err != nil {
		t.Fatalf("mmtp target: %v", err)
	}
	h, _ := testserver.NewHTTP()
	defer h.Close()
	if err := Probe(h.Addr(), "http1", time.Second); err != nil {
		t.Fatalf("http target: %v", err)
	}
	// An HTTP server waits for a line that never comes: the probe times out and says so.
	err := Probe(h.Addr(), "mmtp", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no PONG") {
		t.Fatalf("HTTP server probed as MMTP: %v", err)
	}
	// A server that talks first with something else is named at once.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	err = Probe(ln.Addr().String(), "mmtp", time.Second)
	if err == nil || !strings.Contains(err.Error(), "does not speak MMTP") || !strings.Contains(err.Error(), "SSH-2.0") {
		t.Fatalf("SSH server probed as MMTP: %v", err)
	}
	err = Probe(ln.Addr().String(), "http1", time.Second)
	if err == nil || !strings.Contains(err.Error(), "does not speak HTTP") {
		t.Fatalf("SSH server probed as HTTP: %v", err)
	}
	if err := Probe("127.0.0.1:1", "mmtp", time.Second); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("closed port: %v", err)
	}
}

// TestRefusalTimesFromIntendedAndFromSend: requests fired 50 ms after their intended time
// (a harness behind its schedule) and refused at once by the server. Counted from the
// intended time, every refusal took over 50 ms and the lateness says so; counted from
// the write, the 50 ms are gone: what is left is the server's own time.
func TestRefusalTimesFromIntendedAndFromSend(t *testing.T) {
	srv := mmtpServer(t, nil)
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.half", Body: []byte("x")}, 2, engine(t), hist.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	c.Ramp(context.Background(), 0, nil)
	intended := time.Now().Add(-50 * time.Millisecond)
	for range 20 {
		c.FireQueued(intended)
	}
	c.Flush()
	deadline := time.Now().Add(5 * time.Second)
	for sn := c.Snapshot(); sn.OK+sn.TotalErrors() < 20 && time.Now().Before(deadline); sn = c.Snapshot() {
		time.Sleep(5 * time.Millisecond)
	}
	if sn := c.Snapshot(); sn.Errors["status_503"] == 0 {
		t.Fatalf("no refusal to measure: %+v", sn)
	}
	slowest, slow := c.Refusals()
	sentSlowest, sentSlow := c.SentRefusals()
	if slowest < 50*time.Millisecond || slow == 0 {
		t.Errorf("from the intended time: slowest %v, %d over 10 ms; want over 50 ms", slowest, slow)
	}
	if late := c.Lateness(); late < 50*time.Millisecond {
		t.Errorf("lateness %v, want at least the 50 ms the requests were fired late", late)
	}
	// The 50 ms of lateness is not in it (the server's own time may vary on a loaded box).
	if sentSlowest <= 0 || sentSlowest > slowest-40*time.Millisecond || sentSlow > slow {
		t.Errorf("from the write: slowest %v, %d over 10 ms; want above zero and 50 ms less than %v", sentSlowest, sentSlow, slowest)
	}
}

// bareClient is a Client with no connections, for feeding answers to a conn directly.
func bareClient(cfg Config) *Client {
	return &Client{cfg: cfg, rec: hist.NewRecorder(), errs: map[string]uint64{}}
}

// twoRefusals is a connection of c with two MMTP requests in flight, written 50 ms ago
// (early), and the two 503 answers to them as one read brings them.
func twoRefusals(c *Client) (cn *conn, early time.Time, read []byte) {
	early = time.Now().Add(-50 * time.Millisecond)
	cn = &conn{cl: c, inflight: map[uint32]sent{1: {intended: early, at: early}, 3: {intended: early, at: early}}}
	read = mmtp.AppendResponse(nil, 1, &codec.Response{Status: 503})
	return cn, early, mmtp.AppendResponse(read, 3, &codec.Response{Status: 503})
}

// readyConn is a connection whose bytes were ready at a given time.
type readyConn struct {
	writeCounter
	ready time.Time
}

func (r *readyConn) ReadyAt() (ready, now time.Time) { return r.ready, time.Now() }

// TestLatencyEndsWhenTheAnswerWasReady: an answer's latency ends when the harness's
// reactor saw its bytes ready, not when a worker got to decode them: the 30 ms the
// harness's own workers took to get to it (a box the harness shares with the target)
// are not the target's.
func TestLatencyEndsWhenTheAnswerWasReady(t *testing.T) {
	c := bareClient(Config{Protocol: "mmtp"})
	intended := time.Now().Add(-40 * time.Millisecond)
	sentAt := intended.Add(2 * time.Millisecond)
	cn := &conn{cl: c, inflight: map[uint32]sent{7: {intended: intended, at: sentAt}}}
	rc := &readyConn{ready: intended.Add(6 * time.Millisecond)}
	frame := mmtp.AppendResponse(nil, 7, &codec.Response{Status: 503})
	if n, err := cn.onMMTP(rc, frame); err != nil || n != len(frame) {
		t.Fatalf("onMMTP = %d, %v; want %d, nil", n, err, len(frame))
	}
	if slowest, slow := c.Refusals(); slowest != 6*time.Millisecond || slow != 0 {
		t.Errorf("from the intended time: slowest %v (%d slow), want 6ms (ready - intended), none slow", slowest, slow)
	}
	if slowest, slow := c.SentRefusals(); slowest != 4*time.Millisecond || slow != 0 {
		t.Errorf("from the write: slowest %v (%d slow), want 4ms (ready - sent), none slow", slowest, slow)
	}

	// A request written after the read's stamp: its answer came while the worker waited,
	// and ends at the read (20 ms after its write), not at the stamp before it.
	sentLate := time.Now().Add(-20 * time.Millisecond)
	cn.inflight[8] = sent{intended: sentLate, at: sentLate}
	frame = mmtp.AppendResponse(nil, 8, &codec.Response{Status: 503})
	if _, err := cn.onMMTP(rc, frame); err != nil {
		t.Fatal(err)
	}
	if slowest, slow := c.SentRefusals(); slowest < 20*time.Millisecond || slow != 1 {
		t.Errorf("answer to a request written after the stamp: slowest %v (%d slow), want >= 20ms, 1 slow", slowest, slow)
	}

	// Two answers in one read, both to requests written before its stamp: the first ends
	// at the stamp, the second, which may have come any time until the read, at the read.
	c2 := bareClient(Config{Protocol: "mmtp"})
	cn2, early, two := twoRefusals(c2)
	if _, err := cn2.onMMTP(&readyConn{ready: early.Add(2 * time.Millisecond)}, two); err != nil {
		t.Fatal(err)
	}
	if slowest, slow := c2.SentRefusals(); slowest < 50*time.Millisecond || slow != 1 {
		t.Errorf("two answers in one read: slowest %v (%d slow), want the second at the read (>= 50ms), 1 slow", slowest, slow)
	}
}

// TestLatencyEndsAtTheKernelStamp: with the kernel's receive stamps (RxTimestamps) a read
// is dated by its newest bytes' arrival, so every answer in it ends then, the second of
// two as well, however late the harness read them; a stamp from before the request was
// written cannot be its answer's, and the read's time stands in.
func TestLatencyEndsAtTheKernelStamp(t *testing.T) {
	c := bareClient(Config{Protocol: "mmtp", RxTimestamps: true})
	cn, early, two := twoRefusals(c)
	if _, err := cn.onMMTP(&readyConn{ready: early.Add(3 * time.Millisecond)}, two); err != nil {
		t.Fatal(err)
	}
	if slowest, slow := c.SentRefusals(); slowest != 3*time.Millisecond || slow != 0 {
		t.Errorf("two answers in one stamped read: slowest %v (%d slow), want both at the stamp (3ms), none slow", slowest, slow)
	}

	late := time.Now().Add(-20 * time.Millisecond)
	cn.inflight[5] = sent{intended: late, at: late}
	if _, err := cn.onMMTP(&readyConn{ready: late.Add(-time.Millisecond)}, mmtp.AppendResponse(nil, 5, &codec.Response{Status: 503})); err != nil {
		t.Fatal(err)
	}
	if slowest, slow := c.SentRefusals(); slowest < 20*time.Millisecond || slow != 1 {
		t.Errorf("a stamp before the write: slowest %v (%d slow), want the read's time (>= 20ms), 1 slow", slowest, slow)
	}

	// Written 30 ms after its intended time: a stamp between the two is not its answer's.
	c3 := bareClient(Config{Protocol: "mmtp", RxTimestamps: true})
	intended := time.Now().Add(-50 * time.Millisecond)
	wrote := intended.Add(30 * time.Millisecond)
	cn3 := &conn{cl: c3, inflight: map[uint32]sent{9: {intended: intended, at: wrote}}}
	if _, err := cn3.onMMTP(&readyConn{ready: intended.Add(10 * time.Millisecond)}, mmtp.AppendResponse(nil, 9, &codec.Response{Status: 503})); err != nil {
		t.Fatal(err)
	}
	if slowest, _ := c3.SentRefusals(); slowest < 15*time.Millisecond {
		t.Errorf("a stamp between the intended time and the write: %v from the write, want the read's time (>= 15ms), never below zero", slowest)
	}
}

// TestHTTPAnswerEndsAtTheKernelStamp: an HTTP request remembers when it was written, so a
// request the schedule sent early, answered before its intended time, ends at the
// kernel's stamp and counts from the write, as MMTP's do; a refusal's time from the write
// is counted too.
func TestHTTPAnswerEndsAtTheKernelStamp(t *testing.T) {
	c := bareClient(Config{Protocol: "http1", RxTimestamps: true})
	intended := time.Now().Add(-40 * time.Millisecond)
	wrote := intended.Add(-100 * time.Microsecond) // fired early, within the timer's resolution
	cn := &conn{cl: c, fifo: []sent{{intended: intended, at: wrote}}}
	resp := []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
	if n, err := cn.onHTTP(&readyConn{ready: wrote.Add(60 * time.Microsecond)}, resp); err != nil || n != len(resp) {
		t.Fatalf("onHTTP = %d, %v; want %d, nil", n, err, len(resp))
	}
	if slowest, slow := c.SentRefusals(); slowest != 60*time.Microsecond || slow != 0 {
		t.Errorf("from the write: slowest %v (%d slow), want 60µs (the stamp - the write)", slowest, slow)
	}
}
