package netpoll

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestWaitWritable: a server queues 4 MiB to a client that does not read. WaitWritable
// must block while the queue is above the threshold, end with the context, return once the
// client reads the queue down, and return ErrClosed for a connection closed while waiting.
func TestWaitWritable(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		opened := make(chan Conn, 2)
		h := newTestHandler()
		h.onOpen = func(c Conn) { opened <- c }
		e := newEngine(t, Config{Kind: kind, WriteHardLimit: 32 << 20})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cl := dialTCP(t, addr)
		defer cl.Close()
		sc := <-opened
		if err := sc.WaitWritable(context.Background(), 0); err != nil {
			t.Fatalf("WaitWritable on an empty queue = %v", err)
		}
		if err := sc.Write(make([]byte, 4<<20)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "bytes queued", func() bool { return sc.QueuedBytes() > 256<<10 })

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err = sc.WaitWritable(ctx, 64<<10)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitWritable while the peer does not read = %v, want DeadlineExceeded", err)
		}

		done := make(chan error, 1)
		go func() { done <- sc.WaitWritable(context.Background(), 64<<10) }()
		select {
		case err := <-done:
			t.Fatalf("WaitWritable returned %v before the peer read", err)
		case <-time.After(20 * time.Millisecond):
		}
		cl.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(cl, make([]byte, 4<<20)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("WaitWritable after the peer read = %v", err)
		}
		if q := sc.QueuedBytes(); q > 64<<10 {
			t.Fatalf("WaitWritable returned with %d bytes queued", q)
		}

		// Closed while waiting.
		cl2 := dialTCP(t, addr)
		defer cl2.Close()
		sc2 := <-opened
		if err := sc2.Write(make([]byte, 4<<20)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "bytes queued", func() bool { return sc2.QueuedBytes() > 256<<10 })
		go func() { done <- sc2.WaitWritable(context.Background(), 0) }()
		time.Sleep(10 * time.Millisecond)
		sc2.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("WaitWritable on a closed conn = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("WaitWritable did not return after Close")
		}
	})
}
