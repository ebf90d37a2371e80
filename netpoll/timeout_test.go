package netpoll

import (
	"net"
	"testing"
	"time"
)

// TestIdleTimeout: a silent connection gets OnTimeout(idle); the handler closes it.
func TestIdleTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onTimeout = func(c Conn, k TimeoutKind) {
			c.Write(frame([]byte("goaway")))
			c.CloseAfterFlush(ReasonTimeout)
		}
		e := newEngine(t, Config{Kind: kind, IdleTimeout: 200 * time.Millisecond,
			TimerTick: 20 * time.Millisecond})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		// Activity keeps it alive.
		for i := 0; i < 4; i++ {
			time.Sleep(80 * time.Millisecond)
			c.Write(frame([]byte("hi")))
			if _, err := readFrame(c); err != nil {
				t.Fatal(err)
			}
		}
		h.mu.Lock()
		early := len(h.timeouts)
		h.mu.Unlock()
		if early != 0 {
			t.Errorf("%d timeouts while active", early)
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := readFrame(c)
		if err != nil || string(got) != "goaway" {
			t.Fatalf("goaway = %q, %v", got, err)
		}
		if d := time.Since(start); d < 120*time.Millisecond {
			t.Errorf("idle timeout after %v, want about 200ms", d)
		}
		if r := h.waitClose(t, 5*time.Second); r != ReasonTimeout {
			t.Errorf("reason %v, want timeout", r)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.timeouts) != 1 || h.timeouts[0] != TimeoutIdle {
			t.Errorf("timeouts = %v, want [idle]", h.timeouts)
		}
	})
}

// partialTimeoutConn starts an engine of kind with the partial-frame timeout d, whose
// handler echoes frames and closes on a timeout, and dials it.
func partialTimeoutConn(t *testing.T, kind string, d time.Duration) (*testHandler, Engine, *net.TCPConn) {
	t.Helper()
	h := newTestHandler()
	h.onTimeout = func(c Conn, k TimeoutKind) { c.CloseWithReason(ReasonTimeout) }
	e := newEngine(t, Config{Kind: kind, PartialTimeout: d, TimerTick: 20 * time.Millisecond})
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h, e, dialTCP(t, addr)
}

// TestPartialTimeout: half a frame then silence gets OnTimeout(partial).
func TestPartialTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h, e, c := partialTimeoutConn(t, kind, 150*time.Millisecond)
		defer c.Close()
		c.Write(frame([]byte("complete")))
		if _, err := readFrame(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // no pending bytes: no partial timeout
		if st := e.Stats(); st.Open != 1 {
			t.Fatalf("closed without a partial frame")
		}
		f := frame([]byte("incomplete frame"))
		c.Write(f[:7])
		waitFor(t, 5*time.Second, "pending bytes counted", func() bool { return e.Stats().PendingBytes == 7 })
		if r := h.waitClose(t, 5*time.Second); r != ReasonTimeout {
			t.Errorf("reason %v, want timeout", r)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.timeouts) != 1 || h.timeouts[0] != TimeoutPartial {
			t.Errorf("timeouts = %v, want [partial]", h.timeouts)
		}
		if st := e.Stats(); st.PendingBytes != 0 {
			t.Errorf("PendingBytes = %d after close", st.PendingBytes)
		}
	})
}

// TestPartialTimeoutRestartsAtEachFrame: a client whose writes keep ending mid-frame, while
// every frame completes soon after, is not a stalled frame: the partial-frame clock runs
// from when the incomplete frame began, not from when bytes were first left over.
func TestPartialTimeoutRestartsAtEachFrame(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h, _, c := partialTimeoutConn(t, kind, 300*time.Millisecond)
		defer c.Close()
		// Each write ends frame k and begins frame k+1: bytes are left over after every
		// read for 1.2 s, four partial timeouts, while no frame takes over 60 ms.
		f := frame([]byte("a frame of some length"))
		c.Write(f[:5])
		for i := 0; i < 20; i++ {
			time.Sleep(60 * time.Millisecond)
			if _, err := c.Write(append(append([]byte{}, f[5:]...), f[:5]...)); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := readFrame(c); err != nil || string(got) != "a frame of some length" {
				t.Fatalf("echo %d: %q, %v", i, got, err)
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.timeouts) != 0 {
			t.Fatalf("timeouts %v while every frame completed within 60 ms", h.timeouts)
		}
	})
}

// TestTimeoutOverrides: a listener's IdleTimeout overrides the engine's (negative
// disables), and SetIdleTimeout changes one connection's.
func TestTimeoutOverrides(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		e := newEngine(t, Config{Kind: kind, IdleTimeout: 100 * time.Millisecond,
			TimerTick: 10 * time.Millisecond})
		never := newTestHandler()
		a1, err := e.Listen("never", "127.0.0.1:0", never, ListenerOptions{IdleTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		short := newTestHandler()
		short.onData = func(c Conn, data []byte) (int, error) {
			c.SetIdleTimeout(150 * time.Millisecond)
			return echoFrames(c, data)
		}
		short.onTimeout = func(c Conn, k TimeoutKind) { c.CloseWithReason(ReasonTimeout) }
		a2, err := e.Listen("short", "127.0.0.1:0", short, ListenerOptions{IdleTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c1 := dialTCP(t, a1)
		defer c1.Close()
		c2 := dialTCP(t, a2)
		defer c2.Close()
		time.Sleep(300 * time.Millisecond)
		if st := e.Stats(); st.Open != 2 {
			t.Fatalf("open %d before the second conn spoke, want 2", st.Open)
		}
		start := time.Now()
		c2.Write(frame([]byte("hi")))
		if r := short.waitClose(t, 5*time.Second); r != ReasonTimeout {
			t.Errorf("reason %v", r)
		}
		if d := time.Since(start); d < 140*time.Millisecond {
			t.Errorf("closed %v after speaking, want after the 150ms SetIdleTimeout", d)
		}
		never.mu.Lock()
		defer never.mu.Unlock()
		if len(never.timeouts) != 0 {
			t.Errorf("listener with IdleTimeout -1 got timeouts %v", never.timeouts)
		}
	})
}
