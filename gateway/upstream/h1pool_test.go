package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
)

// countConns serves h and counts the connections opened and closed.
func countConns(t *testing.T, h http.Handler) (addr string, opened, closed *atomic.Int64, srv *httptest.Server) {
	opened, closed = new(atomic.Int64), new(atomic.Int64)
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String(), opened, closed, s
}

// With max_conns_per_host 1, a second concurrent call waits for the first to finish and
// then reuses its connection; one that cannot get a slot in time is a Timeout, not sent.
func TestPoolMaxConnsPerHost(t *testing.T) {
	b := newBlocker()
	addr, opened, _, _ := countConns(t, b)
	c := newCluster(t, config.Cluster{MaxConnsPerHost: 1}, nil, addr)
	first := make(chan error, 1)
	go func() { _, err := c.Call(context.Background(), apiReq("a.b"), 0); first <- err }()
	<-b.entered

	_, err := c.Call(context.Background(), apiReq("a.b"), 50*time.Millisecond)
	if e := mustUpstreamError(t, err); e.Kind != Timeout || e.Sent || !e.Retriable() {
		t.Errorf("waiting for a slot past the deadline: kind %v sent %v: %v", e.Kind, e.Sent, e)
	}

	second := make(chan error, 1)
	go func() { _, err := c.Call(context.Background(), apiReq("a.b"), 5*time.Second); second <- err }()
	time.Sleep(20 * time.Millisecond) // let it wait for the slot
	close(b.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the waiting call: %v", err)
	}
	if n := opened.Load(); n > 2 {
		t.Errorf("%d connections with max_conns_per_host 1", n)
	}
}

// At the per-host cap, a connection put back goes to a caller waiting for one: 32
// callers making 20 calls each through 2 connections open exactly 2, and close none.
func TestPoolHandsConnectionToWaiter(t *testing.T) {
	addr, opened, closed, _ := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
	}))
	c := newCluster(t, config.Cluster{MaxConnsPerHost: 2}, nil, addr)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := c.Call(context.Background(), apiReq("a.b"), 10*time.Second); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if o, cl := opened.Load(), closed.Load(); o != 2 || cl != 0 {
		t.Errorf("640 calls at max_conns_per_host 2: %d connections opened, %d closed; want 2 and 0", o, cl)
	}
}

// Idle connections close after idle_conn_timeout without any further call.
func TestPoolIdleTimeout(t *testing.T) {
	addr, opened, closed, _ := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	c := newCluster(t, config.Cluster{IdleConnTimeout: dur(100 * time.Millisecond)}, nil, addr)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if c.hosts[0].pool.idleCount() == 0 {
		t.Fatal("no idle connection kept")
	}
	waitFor(t, "idle connections to close", func() bool { return closed.Load() == opened.Load() })
	if n := c.hosts[0].pool.idleCount(); n != 0 {
		t.Errorf("%d idle connections after the timeout", n)
	}
}

// A kept-alive connection the backend closed while idle is noticed before use: the next
// call goes out on a new connection and succeeds.
func TestPoolSkipsConnectionClosedWhileIdle(t *testing.T) {
	addr, opened, closed, srv := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
		t.Fatal(err)
	}
	srv.Config.SetKeepAlivesEnabled(false) // closes idle connections
	waitFor(t, "the backend to close the idle connection", func() bool { return closed.Load() == 1 })
	srv.Config.SetKeepAlivesEnabled(true)
	if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
		t.Fatalf("call after the backend closed the idle connection: %v", err)
	}
	if n := opened.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2", n)
	}
}

// A HEAD answer declares a length but carries no body: the connection stays usable, and
// a chunked GET after it on the same connection reads whole.
func TestForwardHeadThenChunkedReuse(t *testing.T) {
	addr, opened, _, _ := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "1000")
			return
		}
		io.WriteString(w, "part one, ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	for _, m := range []string{"HEAD", "GET", "HEAD", "GET"} {
		resp, err := c.Forward(context.Background(), &ProxyRequest{Method: m, Target: "/x"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s body: %v", m, err)
		}
		if m == "HEAD" && (len(b) != 0 || resp.ContentLength != 1000) {
			t.Errorf("HEAD: %d bytes, ContentLength %d; want none and the declared 1000", len(b), resp.ContentLength)
		}
		if m == "GET" && (string(b) != "part one, part two" || resp.ContentLength != -1) {
			t.Errorf("GET: %q ContentLength %d", b, resp.ContentLength)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("%d connections for four sequential requests, want 1", n)
	}
}

// A backend that answers before reading a streamed upload gets its answer through at
// once; the connection, with the upload cut short, is not reused.
func TestForwardEarlyAnswerDuringUpload(t *testing.T) {
	addr, opened, _, _ := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("the first bytes of an upload that never ends"))
	resp, err := c.Forward(context.Background(), &ProxyRequest{Method: "POST", Target: "/up", Body: pr, ContentLength: -1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", resp.Status)
	}
	pw.CloseWithError(io.ErrClosedPipe)
	if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
		t.Fatal(err)
	}
	if n := opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cut upload's is not reused)", n)
	}
}
