package netpoll

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCloseWhileReading closes connections from another goroutine while their workers are
// inside OnData and the client keeps sending. OnClose must come once, after OnData ends.
func TestCloseWhileReading(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const conns = 50
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			done := make(chan struct{})
			go func() { c.Close(); close(done) }()
			time.Sleep(time.Millisecond) // stay inside OnData while Close runs
			<-done
			if err := c.Write([]byte("late")); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after Close = %v, want ErrClosed", err)
			}
			return len(data), nil
		}
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dialTCP(t, addr)
				defer c.Close()
				buf := make([]byte, 1024)
				for j := 0; j < 100; j++ {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				io.Copy(io.Discard, c)
			}()
		}
		wg.Wait()
		waitFor(t, 10*time.Second, "all closed", func() bool { return e.Stats().Open == 0 })
		if st := e.Stats(); st.ClosedBy(ReasonLocal) != conns {
			got := st.ClosedBy(ReasonLocal)
			t.Errorf("closed by local = %d, want %d", got, conns)
		}
		h.checkCloses(t)
	})
}

// TestWriteWhileClosing races many writers against Close on the same connections.
func TestWriteWhileClosing(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const conns = 40
		h := newTestHandler()
		opened := make(chan Conn, conns)
		h.onOpen = func(c Conn) { opened <- c }
		e := newEngine(t, Config{Kind: kind, WriteSoftLimit: 8 << 10, WriteHardLimit: 1 << 20})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dialN(t, addr, conns)
		var wg sync.WaitGroup
		var bad atomic.Int64
		msg := make([]byte, 3000)
		for i := 0; i < conns; i++ {
			c := <-opened
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; k < 200; k++ {
						err := c.Write(msg)
						if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrWriteLimit) {
							bad.Add(1)
						}
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i%5) * time.Millisecond)
				c.Close()
				c.Close()
			}()
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Errorf("%d writes failed with unexpected errors", bad.Load())
		}
		waitFor(t, 10*time.Second, "all closed", func() bool { return e.Stats().Open == 0 })
		if st := e.Stats(); st.QueuedBytes != 0 {
			t.Errorf("QueuedBytes = %d after every conn closed", st.QueuedBytes)
		}
		h.checkCloses(t)
	})
}

// TestHalfCloseAndReset: a client that half-closes still gets its answer, then the
// server reports peer_eof; a client that resets is reported as peer_reset.
func TestHalfCloseAndReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}

		c := dialTCP(t, addr)
		defer c.Close()
		want := []byte("last words")
		c.Write(frame(want))
		c.CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := readFrame(c)
		if err != nil || string(got) != string(want) {
			t.Fatalf("echo after half-close = %q, %v", got, err)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after the echo: %v, want EOF", err)
		}
		if r := h.waitClose(t, 5*time.Second); r != ReasonPeerEOF {
			t.Errorf("half-close reason = %v, want peer_eof", r)
		}

		c2 := dialTCP(t, addr)
		waitFor(t, 5*time.Second, "second open", func() bool { return h.opens.Load() == 2 })
		c2.SetLinger(0)
		c2.Close() // RST
		if r := h.waitClose(t, 5*time.Second); r != ReasonPeerReset {
			t.Errorf("reset reason = %v, want peer_reset", r)
		}
		st := e.Stats()
		if st.ClosedBy(ReasonPeerEOF) != 1 || st.ClosedBy(ReasonPeerReset) != 1 {
			t.Errorf("closed counters: %v", st.Closed)
		}
		h.checkCloses(t)
	})
}

// TestCloseAfterFlush: a large last message reaches the peer whole before the close.
func TestCloseAfterFlush(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		big := make([]byte, 3<<20)
		for i := range big {
			big[i] = byte(i * 7)
		}
		h.onOpen = func(c Conn) {
			if err := c.Write(big); err != nil {
				t.Errorf("Write: %v", err)
			}
			c.CloseAfterFlush(ReasonTimeout)
			if err := c.Write([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after CloseAfterFlush = %v, want ErrClosed", err)
			}
		}
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		time.Sleep(50 * time.Millisecond) // let the queue form before reading
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || len(got) != len(big) {
			t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(big))
		}
		for i := range got {
			if got[i] != big[i] {
				t.Fatalf("byte %d differs", i)
			}
		}
		if r := h.waitClose(t, 5*time.Second); r != ReasonTimeout {
			t.Errorf("reason = %v, want timeout", r)
		}
	})
}
