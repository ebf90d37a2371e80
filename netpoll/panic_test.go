package netpoll

import (
	"bytes"
	"testing"
	"time"
)

// TestHandlerPanic: a panic in OnData or OnTimeout closes that connection with
// ReasonHandler; the engine and other connections go on.
func TestHandlerPanic(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if bytes.HasPrefix(data, []byte("PANIC")) {
				panic("test panic in OnData")
			}
			return echoFrames(c, data)
		}
		h.onTimeout = func(c Conn, k TimeoutKind) { panic("test panic in OnTimeout") }
		e := newEngine(t, Config{Kind: kind, TimerTick: 10 * time.Millisecond})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		good := dialTCP(t, addr)
		defer good.Close()
		bad := dialTCP(t, addr)
		defer bad.Close()
		bad.Write([]byte("PANIC"))
		if r := h.waitClose(t, 5*time.Second); r != ReasonHandler {
			t.Errorf("reason %v, want handler", r)
		}
		good.Write(frame([]byte("still here")))
		good.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := readFrame(good); err != nil || string(got) != "still here" {
			t.Fatalf("other conn after a panic: %q %v", got, err)
		}
		// The timeout panic: shorten this connection's idle timeout.
		var sc Conn
		e.Range(func(c Conn) bool { sc = c; return false })
		sc.SetIdleTimeout(50 * time.Millisecond)
		if r := h.waitClose(t, 5*time.Second); r != ReasonHandler {
			t.Errorf("timeout panic: reason %v, want handler", r)
		}
		h.checkCloses(t)
	})
}
