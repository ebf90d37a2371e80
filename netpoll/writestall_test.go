package netpoll

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// bigAnswerHandler answers any bytes with one message of size bytes, once.
func bigAnswerHandler(size int) *testHandler {
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		return len(data), c.Write(make([]byte, size))
	}
	return h
}

// dialSmallRcvBuf dials with a small receive buffer, so an answer that the client does not
// read backs up into the server's write queue instead of the kernel's buffers.
func dialSmallRcvBuf(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestWriteStallCloses: a client that asks for a large answer and never reads is closed
// with ReasonWriteStall once its queue made no progress for WriteStallTimeout.
func TestWriteStallCloses(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const stall = 300 * time.Millisecond
		h := bigAnswerHandler(16 << 20)
		e := newEngine(t, Config{Kind: kind, TimerTick: 20 * time.Millisecond,
			WriteStallTimeout: time.Hour, WriteHardLimit: 64 << 20})
		// The listener's value overrides the engine's.
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{WriteStallTimeout: stall})
		if err != nil {
			t.Fatal(err)
		}
		c := dialSmallRcvBuf(t, addr)
		start := time.Now()
		if _, err := c.Write([]byte("go")); err != nil {
			t.Fatal(err)
		}
		if r := h.waitClose(t, 10*time.Second); r != ReasonWriteStall {
			t.Fatalf("close reason %v, want %v", r, ReasonWriteStall)
		}
		if d := time.Since(start); d < stall {
			t.Errorf("closed after %v, before the stall timeout %v", d, stall)
		}
		st := e.Stats()
		if n := st.ClosedBy(ReasonWriteStall); n != 1 {
			t.Errorf("Stats.ClosedBy(write_stall) = %d, want 1", n)
		}
		if q := st.QueuedBytes; q != 0 {
			t.Errorf("QueuedBytes = %d after the close, want 0", q)
		}
	})
}

// TestWriteStallSlowReaderKept: a reader that takes the answer slowly, pausing shorter
// than the stall timeout between reads, keeps making progress and gets all of it.
func TestWriteStallSlowReaderKept(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const size = 24 << 20
		h := bigAnswerHandler(size)
		// The reader takes 1 MiB every 100 ms; the stall timeout leaves it ten times that,
		// since on a loaded box (the whole suite under -race) a goroutine can wait 300 ms
		// for a CPU, and then a 300 ms timeout cut a reader that was keeping up.
		e := newEngine(t, Config{Kind: kind, TimerTick: 20 * time.Millisecond,
			WriteStallTimeout: time.Second, WriteHardLimit: 64 << 20})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		if _, err := c.Write([]byte("go")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		buf := make([]byte, 1<<20)
		got := 0
		for got < size {
			time.Sleep(100 * time.Millisecond)
			n, err := io.ReadFull(c, buf[:min(len(buf), size-got)])
			got += n
			if err != nil {
				t.Fatalf("after %d of %d bytes: %v", got, size, err)
			}
		}
		st := e.Stats()
		if n := st.ClosedBy(ReasonWriteStall); n != 0 {
			t.Errorf("Stats.ClosedBy(write_stall) = %d for a progressing reader", n)
		}
		if st.Open != 1 {
			t.Errorf("Open = %d, want the slow reader's connection still open", st.Open)
		}
	})
}

// TestWriteStallDisabled: a negative listener value disables the engine's stall timeout.
func TestWriteStallDisabled(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := bigAnswerHandler(16 << 20)
		e := newEngine(t, Config{Kind: kind, TimerTick: 20 * time.Millisecond,
			WriteStallTimeout: 100 * time.Millisecond, WriteHardLimit: 64 << 20})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{WriteStallTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		c := dialSmallRcvBuf(t, addr)
		if _, err := c.Write([]byte("go")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if st := e.Stats(); st.Open != 1 || st.QueuedBytes == 0 {
			t.Errorf("Open = %d, QueuedBytes = %d: want the stalled connection kept with its queue",
				st.Open, st.QueuedBytes)
		}
	})
}
