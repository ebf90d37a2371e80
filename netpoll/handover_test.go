//go:build linux

package netpoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tagFrames answers each complete frame with tag followed by the frame's payload, so the
// client can tell which engine served it.
func tagFrames(tag string) func(c Conn, data []byte) (int, error) {
	return func(c Conn, data []byte) (int, error) {
		used := 0
		for len(data)-used >= 4 {
			n := int(binary.BigEndian.Uint32(data[used:]))
			if len(data)-used-4 < n {
				break
			}
			c.Write(frame(append([]byte(tag), data[used+4:used+4+n]...)))
			used += 4 + n
		}
		return used, nil
	}
}

func expectFrame(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := readFrame(c)
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestExportAdopt moves a live connection, with half a frame already read, from one epoll
// engine to another: the client's bytes sent before, during and after the move arrive in
// order, the half frame is completed on the new side, and the client never sees a close.
func TestExportAdopt(t *testing.T) {
	ha, hb := newTestHandler(), newTestHandler()
	ha.onData, hb.onData = tagFrames("A:"), tagFrames("B:")
	conns := make(chan Conn, 1)
	ha.onOpen = func(c Conn) { conns <- c }
	ea := newEngine(t, Config{Kind: "epoll"})
	eb := newEngine(t, Config{Kind: "epoll"})
	addr, err := ea.Listen("front", "127.0.0.1:0", ha, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The new side serves the same listener name on its own socket, as a new process
	// inheriting the listener would.
	if _, err := eb.Listen("front", "127.0.0.1:0", hb, ListenerOptions{}); err != nil {
		t.Fatal(err)
	}
	cl := dialTCP(t, addr)
	defer cl.Close()
	ac := <-conns

	cl.Write(frame([]byte("one")))
	expectFrame(t, cl, "A:one")
	// Half of a frame: A reads it and keeps it pending.
	half := frame([]byte("two-split"))
	cl.Write(half[:7])
	waitFor(t, 5*time.Second, "pending bytes in A", func() bool { return ea.Stats().PendingBytes == 7 })

	ma := ea.(Migrator)
	if _, err := ma.Export(ac); !errors.Is(err, ErrNotQuiet) {
		t.Fatalf("Export of an unpaused connection: %v, want ErrNotQuiet", err)
	}
	ac.PauseRead()
	// Sent while paused: stays in the socket, for whoever owns it next.
	cl.Write(half[7:])
	h, err := ma.Export(ac)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Pending, half[:7]) {
		t.Fatalf("pending %q, want %q", h.Pending, half[:7])
	}
	if err := ac.Write([]byte("late")); !errors.Is(err, ErrExported) {
		t.Fatalf("a write after Export: %v, want ErrExported", err)
	}
	bc, err := eb.(Migrator).Adopt("front", h.FD, h.Pending)
	if err != nil {
		t.Fatal(err)
	}
	if eb.Stats().Adopted != 1 || hb.opens.Load() != 1 {
		t.Fatalf("adopted %d, OnOpen %d", eb.Stats().Adopted, hb.opens.Load())
	}
	ac.CloseWithReason(ReasonMigrated)
	if r := ha.waitClose(t, 5*time.Second); r != ReasonMigrated {
		t.Fatalf("A closed with %v", r)
	}
	cl.Write(frame([]byte("three")))
	// Paused until resumed: nothing may be answered yet.
	cl.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := readFrame(cl); !isTimeout(err) {
		t.Fatalf("an adopted connection answered before ResumeRead (err %v)", err)
	}
	bc.ResumeRead()
	expectFrame(t, cl, "B:two-split")
	expectFrame(t, cl, "B:three")
	cl.Write(frame([]byte("four")))
	expectFrame(t, cl, "B:four")
	if bc.RemoteAddr().String() != cl.LocalAddr().String() {
		t.Errorf("adopted RemoteAddr %v, client %v", bc.RemoteAddr(), cl.LocalAddr())
	}
	// The client's close reaches B, which alone owns the socket now.
	cl.Close()
	if r := hb.waitClose(t, 5*time.Second); r != ReasonPeerEOF {
		t.Fatalf("B closed with %v, want peer_eof", r)
	}
	ha.checkCloses(t)
	hb.checkCloses(t)
}

// TestPauseAccept: a held listener opens nothing (the kernel backlog keeps the connect),
// and takes it once resumed.
func TestPauseAccept(t *testing.T) {
	h := newTestHandler()
	e := newEngine(t, Config{Kind: "epoll"})
	addr, err := e.Listen("front", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := e.(Migrator)
	m.PauseAccept()
	cl := dialTCP(t, addr)
	defer cl.Close()
	cl.Write(frame([]byte("x")))
	time.Sleep(100 * time.Millisecond)
	if n := h.opens.Load(); n != 0 {
		t.Fatalf("%d connections opened while accepting was paused", n)
	}
	m.ResumeAccept()
	expectFrame(t, cl, "x")
}

// TestInheritListener: a second engine serves a duplicate of the first one's listening
// socket, as a new process does after a hot upgrade; with the first one paused, the second
// takes every new connection on the same address.
func TestInheritListener(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		ha, hb := newTestHandler(), newTestHandler()
		ha.onData, hb.onData = tagFrames("A:"), tagFrames("B:")
		ea := newEngine(t, Config{Kind: kind})
		addr, err := ea.Listen("front", "127.0.0.1:0", ha, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fd, err := ea.(ListenerFDer).ListenerFD("front")
		if err != nil {
			t.Fatal(err)
		}
		eb := newEngine(t, Config{Kind: "epoll"})
		baddr, err := eb.Listen("front", "", hb, ListenerOptions{InheritFD: fd})
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		if baddr.String() != addr.String() {
			t.Fatalf("inherited listener at %v, want %v", baddr, addr)
		}
		ea.StopAccepting() // closes A's descriptor only; the socket is B's too
		for i := 0; i < 5; i++ {
			cl := dialTCP(t, addr)
			cl.Write(frame([]byte("x")))
			expectFrame(t, cl, "B:x")
			cl.Close()
		}
	})
}

// TestAcceptRate: a listener capped at 20 connections per second opens no more than its
// bucket allows at any moment, yet every connect waits in the backlog and is served.
func TestAcceptRate(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("front", "127.0.0.1:0", h, ListenerOptions{AcceptRate: 20})
		if err != nil {
			t.Fatal(err)
		}
		const n = 12
		start := time.Now()
		var cls []*net.TCPConn
		for i := 0; i < n; i++ {
			cl := dialTCP(t, addr)
			defer cl.Close()
			cls = append(cls, cl)
		}
		// Burst 2 (a tenth of a second's worth), then one per 50 ms: an upper bound that
		// a slow machine can only stay further below.
		for time.Since(start) < 300*time.Millisecond {
			allowed := 2 + int(time.Since(start).Seconds()*20) + 1
			if got := int(h.opens.Load()); got > allowed {
				t.Fatalf("%d connections opened after %v, the rate allows %d", got, time.Since(start), allowed)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i, cl := range cls {
			cl.Write(frame([]byte{byte(i)}))
			expectFrame(t, cl, string([]byte{byte(i)}))
		}
		if e.Stats().AcceptThrottled == 0 {
			t.Fatal("AcceptThrottled = 0")
		}
	})
}
