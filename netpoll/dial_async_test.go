package netpoll

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type dialResult struct {
	c   Conn
	err error
}

// dialAsync starts a DialAsync and returns where its one result arrives; a second
// result fails the test.
func dialAsync(t *testing.T, e Engine, addr string, timeout time.Duration, h Handler) <-chan dialResult {
	t.Helper()
	got := make(chan dialResult, 2)
	var calls atomic.Int32
	err := e.DialAsync(addr, timeout, h, func(c Conn, err error) {
		if calls.Add(1) > 1 {
			t.Errorf("done called twice for %s", addr)
		}
		got <- dialResult{c, err}
	})
	if err != nil {
		if calls.Add(1) > 1 {
			t.Errorf("DialAsync to %s returned %v after calling done", addr, err)
		}
		got <- dialResult{nil, err}
	}
	return got
}

func waitDial(t *testing.T, ch <-chan dialResult) dialResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("DialAsync: no result in 5 s")
		return dialResult{}
	}
}

// fullListener returns the address of a listener whose accept slot and backlog are
// full, so a further connect hangs in SYN_SENT.
func fullListener(t *testing.T) string {
	t.Helper()
	srv := newEngine(t, Config{Kind: "epoll"})
	addr, err := srv.Listen("full", "127.0.0.1:0", newTestHandler(), ListenerOptions{MaxConns: 1, Backlog: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr.String()
}

// TestDialAsync: the connection arrives opened and served; a refused connect, a connect
// past its timeout and one cut short by the engine's close each report their error once,
// run no callbacks and leave nothing open.
func TestDialAsync(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		e := newEngine(t, Config{Kind: kind})
		srv := newTestHandler()
		addr, err := e.Listen("srv", "127.0.0.1:0", srv, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cli := newTestHandler()
		echo := make(chan string, 1)
		cli.onData = func(c Conn, data []byte) (int, error) {
			if len(data) < 4+2 {
				return 0, nil
			}
			echo <- string(data[4:])
			return len(data), nil
		}
		r := waitDial(t, dialAsync(t, e, addr.String(), 5*time.Second, cli))
		if r.err != nil {
			t.Fatal(r.err)
		}
		if cli.opens.Load() != 1 {
			t.Errorf("OnOpen ran %d times before done, want 1", cli.opens.Load())
		}
		if err := r.c.Write(frame([]byte("hi"))); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-echo:
			if s != "hi" {
				t.Errorf("echo %q", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no echo on the dialed connection")
		}
		r.c.Close()
		cli.waitClose(t, 5*time.Second)

		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		fail := newTestHandler()
		if r := waitDial(t, dialAsync(t, e, dead, time.Second, fail)); r.err == nil || !strings.Contains(r.err.Error(), dead) {
			t.Errorf("dial to a closed port: %v", r.err)
		}

		full := fullListener(t)
		start := time.Now()
		r = waitDial(t, dialAsync(t, e, full, 200*time.Millisecond, fail))
		if r.err == nil {
			r.c.Close()
			t.Skip("the kernel completed the connect anyway; nothing to time out")
		}
		if !errors.Is(r.err, context.DeadlineExceeded) && !errors.Is(r.err, os.ErrDeadlineExceeded) || !strings.Contains(r.err.Error(), full) {
			t.Errorf("connect past its timeout: %v, want the address and a deadline", r.err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("timeout of 200ms reported after %v", took)
		}
		if fail.opens.Load() != 0 || closeCount(fail) != 0 {
			t.Errorf("callbacks ran for failed dials: %d opens, %d closes", fail.opens.Load(), closeCount(fail))
		}
		waitFor(t, 5*time.Second, "every connection closed", func() bool { return e.Stats().Open == 0 })

		pending := dialAsync(t, e, full, 0, fail)
		time.Sleep(20 * time.Millisecond)
		e.Close()
		if r := waitDial(t, pending); r.err == nil {
			t.Error("a connect in progress at Close succeeded")
		}
		if err := e.DialAsync(addr.String(), time.Second, fail, func(Conn, error) { t.Error("done after Close") }); err == nil {
			t.Error("DialAsync on a closed engine returned nil")
		}
	})
}

// TestDialAsyncCloseRace: many connects, some refused, some completing, while the engine
// closes: every one reports exactly once, and every connection that opened also closes.
func TestDialAsyncCloseRace(t *testing.T) {
	for round := 0; round < 5; round++ {
		fds := openFDs(t)
		e := newEngine(t, Config{Kind: "epoll"})
		addr, err := e.Listen("srv", "127.0.0.1:0", newTestHandler(), ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		h := newTestHandler()
		var wg sync.WaitGroup
		var results atomic.Int32
		const n = 200
		for i := 0; i < n; i++ {
			target := addr.String()
			if i%3 == 0 {
				target = dead
			}
			wg.Add(1)
			var once atomic.Int32
			report := func() {
				if once.Add(1) > 1 {
					t.Errorf("dial %d reported twice", i)
					return
				}
				results.Add(1)
				wg.Done()
			}
			if err := e.DialAsync(target, time.Second, h, func(Conn, error) { report() }); err != nil {
				report()
			}
			if i == n/2 {
				go e.Close()
			}
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: %d of %d dials reported", round, results.Load(), n)
		}
		e.Close()
		waitFor(t, 5*time.Second, "every opened connection closed", func() bool { return h.opens.Load() == int64(closeCount(h)) })
		waitFor(t, 5*time.Second, "every socket closed", func() bool { return openFDs(t) <= fds })
	}
}

func closeCount(h *testHandler) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.closes)
}

// TestDialAsyncFullPool: connects that end while every worker is busy wait in the ready
// queue like any ready connection, not on a goroutine each, and all finish once a
// worker frees.
func TestDialAsyncFullPool(t *testing.T) {
	e := newEngine(t, Config{Kind: "epoll", Workers: 1})
	srv := newTestHandler()
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // before the engine's Close
	held := make(chan struct{}, 1)
	srv.onData = func(c Conn, data []byte) (int, error) {
		held <- struct{}{}
		<-hold // the one worker is busy until released
		return len(data), nil
	}
	addr, err := e.Listen("srv", "127.0.0.1:0", srv, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("x"))
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker never took the connection")
	}
	before := runtime.NumGoroutine()
	const n = 50
	results := make(chan error, n)
	for range n {
		if err := e.DialAsync(addr.String(), 5*time.Second, newTestHandler(), func(c Conn, err error) {
			if c != nil {
				c.Close()
			}
			results <- err
		}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the connects complete in the kernel meanwhile
	if grown := runtime.NumGoroutine() - before; grown > 10 {
		t.Errorf("%d goroutines more while %d connects waited for a busy pool", grown, n)
	}
	select {
	case err := <-results:
		t.Fatalf("a connect finished while the only worker was busy: %v", err)
	default:
	}
	release.Do(func() { close(hold) })
	for range n {
		select {
		case err := <-results:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("connects did not finish after the worker freed")
		}
	}
}
