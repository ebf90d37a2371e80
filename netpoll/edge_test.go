package netpoll

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestNoEpollCtlPerMessage: a connection registered once serves many request/answer
// round trips, with pauses between them as a session makes, without a single epoll_ctl:
// the registration is edge-triggered and never re-armed.
func TestNoEpollCtlPerMessage(t *testing.T) {
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		n, err := echoFrames(c, data)
		if n > 0 {
			// Pause and resume around the answer, as the HTTP session does per request.
			c.PauseRead()
			go c.ResumeRead()
		}
		return n, err
	}
	eng := newEngine(t, Config{Kind: "epoll", Pollers: 1})
	addr, err := eng.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := eng.(*epollEngine)
	c := dialTCP(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func(i int) {
		msg := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		if _, err := c.Write(frame(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(c)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	roundTrip(0)
	before := e.pollers[0].ctls.Load()
	for i := 1; i <= 500; i++ {
		roundTrip(i)
	}
	if n := e.pollers[0].ctls.Load() - before; n != 0 {
		t.Fatalf("%d epoll_ctl calls for 500 round trips, want 0", n)
	}
}

// TestEdgeDuringTimeoutIsServed: bytes that arrive while OnTimeout runs cannot be taken
// then (OnTimeout never overlaps OnData); once it returns they must be served, though the
// peer sends nothing more (edge-triggered: the socket will not report them again).
func TestEdgeDuringTimeoutIsServed(t *testing.T) {
	inTimeout := make(chan struct{}, 1)
	h := newTestHandler()
	h.onTimeout = func(c Conn, k TimeoutKind) {
		select {
		case inTimeout <- struct{}{}:
			time.Sleep(300 * time.Millisecond) // the client's frame arrives meanwhile
		default:
		}
	}
	eng := newEngine(t, Config{Kind: "epoll", IdleTimeout: 100 * time.Millisecond,
		TimerTick: 20 * time.Millisecond})
	addr, err := eng.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialTCP(t, addr)
	defer c.Close()
	<-inTimeout
	if _, err := c.Write(frame([]byte("late"))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := readFrame(c)
	if err != nil || string(got) != "late" {
		t.Fatalf("frame sent during OnTimeout: %q, %v", got, err)
	}
}

// TestFinBehindBudgetCutIsRead: data and FIN come in one edge with more bytes than one
// read event may take; the FIN must still be read once the rest is (edge-triggered, no
// new edge says it again), and the connection reported closed by the peer.
func TestFinBehindBudgetCutIsRead(t *testing.T) {
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) { return len(data), nil }
	eng := newEngine(t, Config{Kind: "epoll", ReadPerEvent: 4096})
	addr, err := eng.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := dialTCP(t, addr)
	defer c.Close()
	if _, err := c.Write(make([]byte, 6000)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if r := h.waitClose(t, 3*time.Second); r != ReasonPeerEOF {
		t.Fatalf("closed with %v, want peer_eof", r)
	}
}

// TestWritevOverIOVMaxIsSent: a Writev of more buffers than one writev takes, on an idle
// connection with nothing queued, must reach the peer without waiting for another event.
func TestWritevOverIOVMaxIsSent(t *testing.T) {
	h := newTestHandler()
	conns := make(chan Conn, 1)
	h.onOpen = func(c Conn) { conns <- c }
	eng := newEngine(t, Config{Kind: "epoll"})
	addr, err := eng.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cl := dialTCP(t, addr)
	defer cl.Close()
	sc := <-conns
	bufs := make([][]byte, maxIOV+76)
	for i := range bufs {
		bufs[i] = []byte{'x'}
	}
	if err := sc.Writev(bufs...); err != nil {
		t.Fatal(err)
	}
	cl.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(cl, make([]byte, len(bufs))); err != nil {
		t.Fatalf("reading %d bytes written as %d buffers: %v (queued %d)", len(bufs), len(bufs), err, sc.QueuedBytes())
	}
}
