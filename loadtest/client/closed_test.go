package client

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClosedLoopKeepsStreamsInFlight: while the server answers nothing, a closed loop of
// 3 connections x 4 streams has exactly 12 requests out and sends no more (an open loop
// would keep sending); once answers flow, every answer brings the next request; after
// StopClosed the requests in flight drain to zero and nothing more is sent.
func TestClosedLoopKeepsStreamsInFlight(t *testing.T) {
	srv := mmtpServer(t, nil)
	rec := hist.NewRecorder()
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Body: []byte("x")}, 3, engine(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	c.Ramp(context.Background(), 0, nil)
	if open := c.Snapshot().Open; open != 3 {
		t.Fatalf("open %d, want 3", open)
	}
	srv.Stall(300 * time.Millisecond)
	if n := c.StartClosed(4); n != 12 {
		t.Fatalf("StartClosed started %d streams, want 12", n)
	}
	waitFor(t, "12 requests at the server", func() bool { return srv.Requests.Load() >= 12 })
	time.Sleep(100 * time.Millisecond) // still inside the stall: nothing answered, nothing new
	if got := srv.Requests.Load(); got != 12 {
		t.Fatalf("server saw %d requests during the stall, want 12 (closed loop must wait for answers)", got)
	}
	if got := c.InFlight(); got != 12 {
		t.Fatalf("in flight %d during the stall, want 12", got)
	}
	waitFor(t, "the loop to go on after the stall", func() bool { return c.Snapshot().OK >= 200 })
	if got := c.InFlight(); got > 12 {
		t.Fatalf("in flight %d, want at most 12 streams", got)
	}
	c.StopClosed()
	waitFor(t, "the streams to drain", func() bool { return c.InFlight() == 0 })
	sn := c.Snapshot()
	time.Sleep(50 * time.Millisecond)
	if after := c.Snapshot(); after.Sent != sn.Sent {
		t.Fatalf("sent went from %d to %d after StopClosed and drain", sn.Sent, after.Sent)
	}
	if sn.OK != sn.Sent || sn.TotalErrors() != 0 {
		t.Fatalf("after drain: %+v, want every request answered ok", sn)
	}
	if got := rec.Total().Count(); got != sn.OK {
		t.Fatalf("recorded %d latencies for %d answers", got, sn.OK)
	}
	if got := uint64(srv.Requests.Load()); got != sn.Sent {
		t.Fatalf("server saw %d requests, client sent %d", got, sn.Sent)
	}
}

// TestClosedLoopHTTP: one stream per HTTP connection (no pipelining) loops too.
func TestClosedLoopHTTP(t *testing.T) {
	srv, err := testserver.NewHTTP()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, _ := New(Config{Target: srv.Addr(), Protocol: "http1", API: "demo.echo", Body: []byte("hi")}, 2, engine(t), hist.NewRecorder())
	c.Ramp(context.Background(), 0, nil)
	c.StartClosed(1)
	waitFor(t, "100 answers", func() bool { return c.Snapshot().OK >= 100 })
	c.StopClosed()
	waitFor(t, "the streams to drain", func() bool { return c.InFlight() == 0 })
	if sn := c.Snapshot(); sn.OK != sn.Sent || sn.TotalErrors() != 0 {
		t.Fatalf("%+v", sn)
	}
}

// TestHTTPRequestLine: the http1 mode sends POST /api/<operation> whatever the target, so
// the same command measures a backend (which serves /api/demo.size) and the gateway's
// HTTP listener (which maps /api/demo.size to the API demo.size) on the same URL.
func TestHTTPRequestLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		got <- string(buf[:n])
	}()
	c, _ := New(Config{Target: ln.Addr().String(), Protocol: "http1", API: "demo.size", Body: []byte("1024")}, 1, engine(t), hist.NewRecorder())
	c.Ramp(context.Background(), 0, nil)
	c.Fire(time.Now())
	select {
	case req := <-got:
		line, _, _ := strings.Cut(req, "\r\n")
		if line != "POST /api/demo.size HTTP/1.1" {
			t.Fatalf("request line %q, want POST /api/demo.size HTTP/1.1", line)
		}
		if !strings.HasSuffix(req, "\r\n\r\n1024") || !strings.Contains(req, "Content-Length: 4\r\n") {
			t.Fatalf("request %q: want body 1024 with its length", req)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no request arrived")
	}
}
