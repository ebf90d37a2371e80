package netpoll

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestSoftLimitBackpressure: a client that sends a lot and reads nothing. The echoes
// queue up to the soft limit, then the server stops reading that connection, so the
// client's own writes block instead of the queue reaching the hard limit. Once the client
// reads, everything flows and arrives intact.
func TestSoftLimitBackpressure(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const soft, hard = 64 << 10, 4 << 20
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind, WriteSoftLimit: soft, WriteHardLimit: hard})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		msg := frame(bytes.Repeat([]byte("0123456789abcdef"), 1024)) // 16 KiB + 4
		const total = 2000                                           // ~32 MiB, far above what buffers hold
		sent := make(chan int, 1)
		go func() {
			n := 0
			c.SetWriteDeadline(time.Now().Add(60 * time.Second))
			for ; n < total; n++ {
				if _, err := c.Write(msg); err != nil {
					break
				}
			}
			sent <- n
		}()
		// Without reading, the writer must stall: the server stopped reading.
		waitFor(t, 20*time.Second, "queue at the soft limit", func() bool {
			return e.Stats().QueuedBytes >= soft
		})
		time.Sleep(200 * time.Millisecond)
		st := e.Stats()
		if st.Open != 1 || st.QueuedBytes > hard {
			t.Fatalf("open %d, queued %d: the slow reader was not throttled", st.Open, st.QueuedBytes)
		}
		select {
		case n := <-sent:
			t.Fatalf("client wrote all %d messages without reading: no backpressure", n)
		default:
		}
		// Now read everything.
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for i := 0; i < total; i++ {
			got, err := readFrame(c)
			if err != nil {
				t.Fatalf("echo %d: %v", i, err)
			}
			if !bytes.Equal(got, msg[4:]) {
				t.Fatalf("echo %d differs", i)
			}
		}
		if n := <-sent; n != total {
			t.Fatalf("client sent %d of %d", n, total)
		}
		if st := e.Stats(); st.ClosedBy(ReasonWriteLimit) != 0 {
			t.Errorf("closed by write limit despite backpressure")
		}
	})
}

// TestPendingLimitAndHandlerError: an incomplete frame above MaxPending closes with
// pending_limit; an OnData error closes with handler.
func TestPendingLimitAndHandlerError(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if bytes.HasPrefix(data, []byte("ERR")) {
				return 0, errors.New("bad request")
			}
			return echoFrames(c, data)
		}
		e := newEngine(t, Config{Kind: kind, MaxPending: 1000})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		c.Write(frame(make([]byte, 5000))[:2000]) // declares 5000, sends 1996
		if r := h.waitClose(t, 5*time.Second); r != ReasonPendingLimit {
			t.Errorf("reason %v, want pending_limit", r)
		}
		c2 := dialTCP(t, addr)
		defer c2.Close()
		c2.Write([]byte("ERR!"))
		if r := h.waitClose(t, 5*time.Second); r != ReasonHandler {
			t.Errorf("reason %v, want handler", r)
		}
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c2); err != nil {
			t.Errorf("client after handler close: %v", err)
		}
		if st := e.Stats(); st.PendingBytes != 0 {
			t.Errorf("PendingBytes %d", st.PendingBytes)
		}
	})
}

// TestPoolFullQueues: with two workers and slow handlers, ready connections wait in the
// queue (counted in PoolWaiting) and are all served.
func TestPoolFullQueues(t *testing.T) {
	const conns = 40
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		time.Sleep(5 * time.Millisecond)
		return echoFrames(c, data)
	}
	e := newEngine(t, Config{Workers: 2})
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var maxWaiting int
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if w := e.Stats().PoolWaiting; w > 0 {
				mu.Lock()
				maxWaiting = max(maxWaiting, w)
				mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialTCP(t, addr)
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			for j := 0; j < 5; j++ {
				c.Write(frame([]byte("x")))
				if _, err := readFrame(c); err != nil {
					t.Errorf("echo: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if maxWaiting == 0 {
		t.Errorf("PoolWaiting never above 0 with 2 workers and %d busy conns", conns)
	}
	if st := e.Stats(); st.PoolCap != 2 {
		t.Errorf("PoolCap %d", st.PoolCap)
	}
}
