package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sys/unix"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/testnet"
	"github.com/mgw-project/mgw/netpoll"
)

// asyncCluster is newCluster with a reactor of its own, so CallAsync goes through it.
func asyncCluster(t testing.TB, cfg config.Cluster, opts Options, addrs ...string) *Cluster {
	t.Helper()
	eng, err := netpoll.New(netpoll.Config{Pollers: 1, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	cfg.Hosts = addrs
	opts.Engine = eng
	c, err := New(&cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// callAsync waits for CallAsync's one answer; a second call of done fails the test.
func callAsync(t testing.TB, c *Cluster, req *codec.Request, timeout time.Duration) (*codec.Response, error) {
	t.Helper()
	return awaitOnce(t, func(done func(*codec.Response, error)) { c.CallAsync(req, timeout, done) })
}

// awaitOnce starts an asynchronous call and waits for its one answer; a second call of
// done fails the test.
func awaitOnce[T any](t testing.TB, start func(done func(T, error))) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 2)
	start(func(v T, err error) { ch <- result{v, err} })
	r := <-ch
	select {
	case again := <-ch:
		t.Fatalf("done called twice: %v, then %v", r.err, again.err)
	case <-time.After(time.Millisecond):
	}
	return r.v, r.err
}

// rawServer serves each connection accepted on a loopback listener with serve, once per
// request read (its body not yet read: serve reads or drops it), until serve says to
// close or the connection ends. n counts requests across connections; conns counts
// connections.
func rawServer(t testing.TB, serve func(n int, req *http.Request, conn net.Conn) (closeAfter bool)) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	var served atomic.Int64
	addr = testnet.Serve(t, func(conn net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil || serve(int(served.Add(1)), req, conn) {
				return
			}
		}
	})
	return addr, conns
}

// rawBackend answers each request, its body read, with what answer returns for it (the
// connection closes when answer says so).
func rawBackend(t testing.TB, answer func(n int, req *http.Request) (raw string, closeAfter bool)) (addr string, conns *atomic.Int64) {
	t.Helper()
	return rawServer(t, func(n int, req *http.Request, conn net.Conn) bool {
		io.Copy(io.Discard, req.Body)
		raw, closeAfter := answer(n, req)
		_, err := io.WriteString(conn, raw)
		return err != nil || closeAfter
	})
}

// The request goes out as Call maps it, the answer comes back whole, and one connection
// carries every call in turn.
func TestCallAsyncMapsAndReuses(t *testing.T) {
	addr, conns := rawBackend(t, func(n int, r *http.Request) (string, bool) {
		body := fmt.Sprintf("%s %s op=%s host=%s", r.Method, r.URL.Path, r.Header.Get("Operation-Type"), r.Host)
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: %d\r\n\r\n%s", n, len(body), body), false
	})
	c := asyncCluster(t, config.Cluster{PathPrefix: "/gw"}, Options{}, addr)
	for i := range 20 {
		resp, err := callAsync(t, c, apiReq("a.b"), time.Second)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		want := "POST /gw/a.b op=a.b host=" + addr
		if resp.Status != 200 || string(resp.Body) != want || resp.Header.Value("x-n") != fmt.Sprint(i+1) {
			t.Fatalf("call %d: %d %q %v, want 200 %q", i, resp.Status, resp.Body, resp.Header, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 calls in turn opened %d connections, want 1", n)
	}
}

// Every framing a backend may use: chunked (with an extension and a trailer), a body
// delimited by the close, interim 1xx answers, no body at all.
func TestCallAsyncFramings(t *testing.T) {
	for name, raw := range map[string]string{
		"chunked":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"a;b\"\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n",
		"close":     "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello",
		"http10":    "HTTP/1.0 200 OK\r\n\r\nhello",
		"interim":   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"empty-204": "HTTP/1.1 204 No Content\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr, _ := rawBackend(t, func(int, *http.Request) (string, bool) {
				return raw, strings.Contains(raw, "close") || strings.HasPrefix(raw, "HTTP/1.0")
			})
			c := asyncCluster(t, config.Cluster{}, Options{}, addr)
			for i := range 3 { // and again, on the same connection or a new one
				resp, err := callAsync(t, c, apiReq("a.b"), time.Second)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				want := "hello"
				if name == "empty-204" {
					want = ""
				}
				if string(resp.Body) != want {
					t.Fatalf("call %d: %d %q, want %q", i, resp.Status, resp.Body, want)
				}
			}
		})
	}
}

// Broken answers fail as sent (502), and the next call gets a fresh connection.
func TestCallAsyncBrokenAnswers(t *testing.T) {
	for name, partial := range map[string]string{
		"mid-body":    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
		"mid-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		"no-answer":   "",
		"garbage":     "NOT HTTP\r\n\r\n",
		"too-large":   "HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n",
		"101":         "HTTP/1.1 101 Switching Protocols\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr, _ := rawBackend(t, func(int, *http.Request) (string, bool) { return partial, true })
			c := asyncCluster(t, config.Cluster{}, Options{MaxResponseBytes: 1024}, addr)
			for range 2 {
				_, err := callAsync(t, c, apiReq("a.b"), time.Second)
				e := mustUpstreamError(t, err)
				if e.Kind != Failed || !e.Sent || e.Retriable() || e.Status != 502 {
					t.Fatalf("got kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
				}
				if name == "too-large" && !errors.Is(e, errTooLarge) {
					t.Errorf("too large: %v", e)
				}
			}
		})
	}
}

// A backend past the timeout: Timeout, sent; its connection is closed under it, and the
// next call is served on another.
func TestCallAsyncTimeout(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	addr, conns := rawBackend(t, func(int, *http.Request) (string, bool) {
		if slow.Load() {
			time.Sleep(300 * time.Millisecond)
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	_, err := callAsync(t, c, apiReq("a.b"), 50*time.Millisecond)
	if e := mustUpstreamError(t, err); e.Kind != Timeout || !e.Sent || e.Status != 504 {
		t.Fatalf("slow backend: kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
	}
	slow.Store(false)
	if resp, err := callAsync(t, c, apiReq("a.b"), time.Second); err != nil || string(resp.Body) != "ok" {
		t.Fatalf("after the timeout: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the timed-out one must not be reused", n)
	}
	if n := c.InFlight(); n != 0 {
		t.Errorf("in flight %d after both calls", n)
	}
}

// Nothing listens: connect failures are tried again, then answered 503, not sent.
func TestCallAsyncConnectRefused(t *testing.T) {
	set := metrics.NewSet()
	c := asyncCluster(t, config.Cluster{}, Options{Metrics: set}, closedPort(t))
	_, err := callAsync(t, c, apiReq("a.b"), time.Second)
	e := mustUpstreamError(t, err)
	if e.Kind != ConnectFailed || e.Sent || !e.Retriable() || e.Status != 503 {
		t.Fatalf("got kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
	}
	if n := c.m.connectRetries.Get(); n != maxConnectAttempts-1 {
		t.Errorf("%d connect retries, want %d", n, maxConnectAttempts-1)
	}
}

// At the per-host cap, connections go from one call to the next waiting: 32 callers of
// 20 calls each through 2 connections open exactly 2.
func TestCallAsyncHandsConnectionsOn(t *testing.T) {
	addr, conns := rawBackend(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{MaxConnsPerHost: 2}, Options{}, addr)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := callAsync(t, c, apiReq("a.b"), 5*time.Second); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections with max_conns_per_host 2, want 2 (none churned)", n)
	}
	if n := c.hosts[0].async.idleCount(); n != 2 {
		t.Errorf("%d idle after the calls, want 2", n)
	}
}

// TestCallAsyncKeepsABurstsConnections: with the default pool limits, the connections a
// burst of concurrent calls opened stay for the next burst. With an idle cap below the
// burst (256 before), every burst closed the connections over the cap as their answers
// came and dialed them again: past capacity, where the calls in flight swing with the
// admission limit, the gateway paid a connect for one call in twenty (issue 19).
func TestCallAsyncKeepsABurstsConnections(t *testing.T) {
	const burst = 300
	addr, conns := rawBackend(t, func(int, *http.Request) (string, bool) {
		time.Sleep(100 * time.Millisecond) // every call of a burst holds its connection at once
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	for round := range 2 {
		done := make(chan error, burst)
		for range burst {
			c.CallAsync(apiReq("a.b"), 10*time.Second, func(_ *codec.Response, err error) { done <- err })
		}
		for range burst {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if n := c.hosts[0].async.idleCount(); n != burst {
			t.Errorf("burst %d: %d connections idle after it, want all %d kept", round+1, n, burst)
		}
	}
	if n := conns.Load(); n != burst {
		t.Errorf("%d connections for two bursts of %d calls, want %d (none closed and dialed again)", n, burst, burst)
	}
}

// A call that cannot get a slot before its deadline is a Timeout, not sent.
func TestCallAsyncWaitsPastDeadline(t *testing.T) {
	release := make(chan struct{})
	addr, _ := rawBackend(t, func(int, *http.Request) (string, bool) {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{MaxConnsPerHost: 1}, Options{}, addr)
	first := make(chan error, 1)
	c.CallAsync(apiReq("a.b"), 5*time.Second, func(_ *codec.Response, err error) { first <- err })
	time.Sleep(50 * time.Millisecond) // the first holds the only connection
	_, err := callAsync(t, c, apiReq("a.b"), 50*time.Millisecond)
	if e := mustUpstreamError(t, err); e.Kind != Timeout || e.Sent || !e.Retriable() {
		t.Errorf("waiting for a slot past the deadline: kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A backend that closes each connection after its answer, while keep-alive was promised:
// the reactor sees the close of an idle connection, so the next call dials anew.
func TestCallAsyncDropsConnectionClosedWhileIdle(t *testing.T) {
	addr, conns := rawBackend(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	for i := range 5 {
		if _, err := callAsync(t, c, apiReq("a.b"), time.Second); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		waitFor(t, "the closed connection to leave the pool", func() bool { return c.hosts[0].async.idleCount() == 0 })
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("%d connections for 5 calls on a closing backend", n)
	}
}

// The reactor's concurrency, hammered: calls racing their deadlines against answers at
// random delays, on few connections. Every call is answered exactly once (callAsync
// checks), and afterwards nothing is in flight and nothing waits.
func TestCallAsyncRacesDeadlines(t *testing.T) {
	addr, _ := rawBackend(t, func(n int, _ *http.Request) (string, bool) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if n%17 == 0 {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{MaxConnsPerHost: 4}, Options{}, addr)
	var wg sync.WaitGroup
	var ok, timedOut atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, err := callAsync(t, c, apiReq("a.b"), time.Duration(1+rand.IntN(4))*time.Millisecond)
				if err == nil {
					ok.Add(1)
					continue
				}
				if e := mustUpstreamError(t, err); e.Kind != Timeout {
					t.Errorf("kind %v: %v", e.Kind, e)
					return
				}
				timedOut.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d answered, %d timed out", ok.Load(), timedOut.Load())
	if n := c.InFlight(); n != 0 {
		t.Errorf("in flight %d after every call ended", n)
	}
	p := c.hosts[0].async
	waitFor(t, "the pool to settle", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waitq) == 0 && p.open == len(p.idle) && p.open <= 4
	})
}

// A large answer arrives over many reads and is whole; a backend that answers before it
// reads a large request body (then reads it and goes on) gets the early answer through,
// and the connection stays in step for the next call.
func TestCallAsyncLargeBodies(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	addr, conns := rawBackend(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n\r\n" + big, false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	resp, err := callAsync(t, c, apiReq("a.b"), 5*time.Second)
	if err != nil || len(resp.Body) != len(big) {
		t.Fatalf("3 MiB answer: %v, %d bytes", err, len(resp.Body))
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections", n)
	}

	early, _ := rawServer(t, func(_ int, req *http.Request, conn net.Conn) bool {
		if req.ContentLength > 1<<20 {
			io.WriteString(conn, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
			time.Sleep(50 * time.Millisecond) // the answer is out before the body is read
			io.Copy(io.Discard, req.Body)
			return false
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	c = asyncCluster(t, config.Cluster{}, Options{}, early)
	req := apiReq("a.b")
	req.Body = make([]byte, 4<<20)
	if resp, err := callAsync(t, c, req, 5*time.Second); err != nil || resp.Status != 413 {
		t.Fatalf("early answer: %v %v", resp, err)
	}
	for i := range 3 {
		if resp, err := callAsync(t, c, apiReq("a.b"), 5*time.Second); err != nil || string(resp.Body) != "ok" {
			t.Fatalf("call %d after an early answer: %v %v", i, resp, err)
		}
	}
}

// TestCallAsyncSurvivesFullAcceptQueue is TestConnectSurvivesFullAcceptQueue through the
// reactor (issue 12 item 4): SYNs dropped by a full accept queue are sent again by the
// kernel within the connect timeout, a connect that fails anyway is tried again, and
// every call gets its 200.
func TestCallAsyncSurvivesFullAcceptQueue(t *testing.T) {
	addr := backlogServer(t, 5, time.Millisecond)
	c := asyncCluster(t, config.Cluster{Timeout: dur(20 * time.Second)}, Options{}, addr)
	everyCallAnswered(t, func(req *codec.Request) (*codec.Response, error) { return callAsync(t, c, req, 0) })
}

// droppingListener is a backend address whose SYNs are dropped: a listening socket
// nobody accepts on, its queue of one filled.
func droppingListener(t *testing.T) string {
	t.Helper()
	fd := listenFD(t, 1)
	t.Cleanup(func() { unix.Close(fd) })
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for range 4 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	return addr
}

// A deadline that passes while the connection is still being made (the backend's accept
// queue is full and never drains): Timeout, not sent, so the route's fallback may go on,
// and the error says the connect was what took the time.
func TestCallAsyncDeadlineWhileConnecting(t *testing.T) {
	c := asyncCluster(t, config.Cluster{}, Options{}, droppingListener(t))
	_, err := callAsync(t, c, apiReq("a.b"), 200*time.Millisecond)
	e := mustUpstreamError(t, err)
	// Which comes first at the deadline, the call's timer or the connect's own, is a race:
	// either says the connect was what took the time.
	if e.Kind != Timeout || e.Sent || !e.Retriable() || !errors.Is(e, errConnecting) && !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("got kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
}

// A burst of calls to a host with no connection yet dials at most maxDialing at once
// (a goroutine each, and a SYN each at the backend); the rest wait in line, and every
// call still ends, unsent.
func TestCallAsyncBoundsConnects(t *testing.T) {
	c := asyncCluster(t, config.Cluster{}, Options{}, droppingListener(t))
	const calls = 64
	done := make(chan error, calls)
	for range calls {
		c.CallAsync(apiReq("a.b"), 300*time.Millisecond, func(_ *codec.Response, err error) { done <- err })
	}
	time.Sleep(50 * time.Millisecond)
	buf := make([]byte, 1<<20)
	if n := strings.Count(string(buf[:runtime.Stack(buf, true)]), "(*asyncPool).dial("); n > maxDialing {
		t.Errorf("%d connects in flight to one host, want at most %d", n, maxDialing)
	}
	for range calls {
		e := mustUpstreamError(t, <-done)
		if e.Kind != Timeout || e.Sent {
			t.Fatalf("kind %v sent %v: %v", e.Kind, e.Sent, e)
		}
	}
	p := c.hosts[0].async
	waitFor(t, "the connects to end", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.dialing == 0 && p.open == 0 && len(p.waitq) == 0
	})
}

// TestCallAsyncStaleKeepAlive is TestStaleKeepAliveIsNotResent through the reactor: a
// backend that closes each kept-alive connection a moment after answering. A call that
// meets such a connection is tried on another when nothing of it went out; when it may
// have, it fails as sent and must not claim to be retriable.
func TestCallAsyncStaleKeepAlive(t *testing.T) {
	c := asyncCluster(t, config.Cluster{}, Options{}, idleCloser(t))
	failed := 0
	for range 300 {
		_, err := callAsync(t, c, apiReq("a.b"), time.Second)
		if err == nil {
			continue
		}
		failed++
		if e := mustUpstreamError(t, err); e.Kind != Failed || !e.Sent || e.Retriable() {
			t.Fatalf("stale connection: kind %v sent %v retriable %v: %v", e.Kind, e.Sent, e.Retriable(), e)
		}
	}
	t.Logf("%d of 300 calls met a closing connection after writing; retried: %d", failed, c.m.idleRetries.Get())
}

// Calls that share the cluster's one deadline timer: a short timeout that begins after
// long ones still ends on time, a timeout beyond the queue's lists gets its own timer,
// and every call ends exactly once, none before its deadline.
func TestCallAsyncDeadlinesShareOneTimer(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, _ := rawBackend(t, func(int, *http.Request) (string, bool) {
		<-release // never answers within a test's timeout
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	c := asyncCluster(t, config.Cluster{MaxConnsPerHost: 64}, Options{}, addr)
	// Longest first: each shorter one must pull the timer earlier. Two more distinct
	// timeouts than the queue holds lists.
	var timeouts []time.Duration
	for i := maxDeadlineLists + 2; i > 0; i-- {
		timeouts = append(timeouts, time.Duration(100*i)*time.Millisecond)
	}
	type result struct {
		timeout, took time.Duration
		err           error
	}
	results := make(chan result, 2*len(timeouts))
	for _, d := range timeouts {
		for range 2 {
			start := time.Now()
			c.CallAsync(apiReq("a.b"), d, func(_ *codec.Response, err error) {
				results <- result{d, time.Since(start), err}
			})
		}
	}
	for range 2 * len(timeouts) {
		r := <-results
		if e := mustUpstreamError(t, r.err); e.Kind != Timeout {
			t.Fatalf("timeout %v: kind %v: %v", r.timeout, e.Kind, e)
		}
		if r.took < r.timeout || r.took > r.timeout+500*time.Millisecond {
			t.Errorf("timeout %v ended after %v", r.timeout, r.took)
		}
	}
	select {
	case r := <-results:
		t.Fatalf("a call ended twice: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	c.deadlines.mu.Lock()
	defer c.deadlines.mu.Unlock()
	for _, l := range c.deadlines.lists {
		if l.head != nil || l.tail != nil {
			t.Errorf("timeout %v still holds calls", l.timeout)
		}
	}
}
