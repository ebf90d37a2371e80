package netpoll

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDial: outbound connections served by the same engine, from a chosen local address,
// echo like accepted ones; failures report the address and run no callbacks.
func TestDial(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		srv := newTestHandler()
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("srv", "127.0.0.1:0", srv, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cli := newTestHandler()
		got := make(chan []byte, 10)
		cli.onData = func(c Conn, data []byte) (int, error) {
			if len(data) < 4+5 {
				return 0, nil
			}
			got <- append([]byte(nil), data...)
			return len(data), nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := e.Dial(ctx, addr.String(), "127.0.0.5:0", cli)
		if err != nil {
			t.Fatal(err)
		}
		if la := c.LocalAddr().(*net.TCPAddr); !la.IP.Equal(net.IPv4(127, 0, 0, 5)) || la.Port == 0 {
			t.Errorf("LocalAddr = %v, want 127.0.0.5:port", la)
		}
		if c.RemoteAddr().String() != addr.String() || c.Listener() != "" {
			t.Errorf("RemoteAddr %v Listener %q", c.RemoteAddr(), c.Listener())
		}
		if err := c.Write(frame([]byte("hello"))); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b[4:]) != "hello" {
				t.Errorf("echo %q", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no echo")
		}
		if st := e.Stats(); st.Dialed != 1 || st.Accepted != 1 || st.Open != 2 {
			t.Errorf("stats: dialed %d accepted %d open %d", st.Dialed, st.Accepted, st.Open)
		}
		c.Close()
		if r := cli.waitClose(t, 5*time.Second); r != ReasonLocal {
			t.Errorf("client reason %v", r)
		}
		if r := srv.waitClose(t, 5*time.Second); r != ReasonPeerEOF {
			t.Errorf("server reason %v", r)
		}

		// A closed port: refused, no callbacks.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		fail := newTestHandler()
		if _, err := e.Dial(ctx, dead, "", fail); err == nil || !strings.Contains(err.Error(), dead) {
			t.Errorf("dial to closed port: %v", err)
		}
		if fail.opens.Load() != 0 {
			t.Errorf("OnOpen ran for a failed dial")
		}
		if _, err := e.Dial(ctx, "127.0.0.1:bad", "", fail); err == nil {
			t.Errorf("bad address accepted")
		}
	})
}

// TestConnCap: at the listener's cap accepting pauses (counted); a close lets the next
// connection in.
func TestConnCap(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const max = 5
		h := newTestHandler()
		opened := make(chan Conn, 20)
		h.onOpen = func(c Conn) { opened <- c }
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{MaxConns: max})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < max+3; i++ {
			c := dialTCP(t, addr) // completes in the kernel backlog even when paused
			defer c.Close()
		}
		var first Conn
		for i := 0; i < max; i++ {
			c := <-opened
			if first == nil {
				first = c
			}
		}
		time.Sleep(100 * time.Millisecond)
		if st := e.Stats(); st.Open != max || st.AcceptPaused == 0 {
			t.Fatalf("open %d (want %d), accept paused %d (want > 0)", st.Open, max, st.AcceptPaused)
		}
		first.Close()
		select {
		case <-opened:
		case <-time.After(5 * time.Second):
			t.Fatal("no accept after a close below the cap")
		}
		if st := e.Stats(); st.Open != max {
			t.Errorf("open %d after one close and one accept, want %d", st.Open, max)
		}
	})
}

// TestDialContextCancel: a connect that cannot complete (the target's backlog is full and
// it is not accepting) gives up with the context, runs no callbacks and leaks nothing.
func TestDialContextCancel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		full := fullListener(t) // further SYNs are dropped
		e := newEngine(t, Config{Kind: kind})
		h := newTestHandler()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := e.Dial(ctx, full, "", h)
		if err == nil {
			c.Close()
			t.Skip("the kernel completed the connect anyway; nothing to cancel")
		}
		if ctx.Err() == nil {
			t.Skipf("dial failed before the deadline: %v", err)
		}
		if h.opens.Load() != 0 {
			t.Errorf("OnOpen ran for a cancelled dial")
		}
		if st := e.Stats(); st.Open != 0 || st.Dialed != 0 {
			t.Errorf("open %d dialed %d after a cancelled dial", st.Open, st.Dialed)
		}
	})
}
