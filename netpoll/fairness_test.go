package netpoll

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestFloodingConnDoesNotStarve: with one worker, a connection that sends without pause
// is re-armed after ReadPerEvent bytes and goes to the back of the line, so another
// connection's request is still answered promptly enough to finish.
func TestFloodingConnDoesNotStarve(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if len(data) > 0 && data[0] == 'F' { // flood: swallow
				return len(data), nil
			}
			return echoFrames(c, data)
		}
		e := newEngine(t, Config{Kind: kind, Workers: 1, Pollers: 1, ReadPerEvent: 4 << 10})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		flood := dialTCP(t, addr)
		defer flood.Close()
		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64<<10)
			for i := range buf {
				buf[i] = 'F'
			}
			flood.SetWriteDeadline(time.Now().Add(30 * time.Second))
			for !stop.Load() {
				if _, err := flood.Write(buf); err != nil {
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		c := dialTCP(t, addr)
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := 0; i < 20; i++ {
			c.Write(frame([]byte("ping")))
			if got, err := readFrame(c); err != nil || string(got) != "ping" {
				t.Fatalf("ping %d under a flood: %q %v; stats %+v", i, got, err, e.Stats())
			}
		}
		stop.Store(true)
		flood.Close()
		<-done
		if st := e.Stats(); kind == "epoll" && st.Events < 20 {
			t.Errorf("only %d events", st.Events)
		}
	})
}

// TestBatchSharesWorkersYetBlockedOnesDoNotStall: a batch of ready connections goes to
// at most GOMAXPROCS workers, the rest waiting in the ready queue for them. Handlers
// should never block; when they do, a queued connection gets a worker of its own after
// readyPatience instead of waiting for the blocked ones in turn, also when no other
// event comes (the queue's alarm). With one P, and the writes made before the poller
// runs (so they arrive as one batch), eight connections whose handler sleeps 200 ms are
// answered in about 200 ms, not the 1.6 s of eight sleeps on one worker.
func TestBatchSharesWorkersYetBlockedOnesDoNotStall(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const conns, nap = 8, 200 * time.Millisecond
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		time.Sleep(nap)
		return echoFrames(c, data)
	}
	e := newEngine(t, Config{Kind: "epoll", Workers: 64, Pollers: 1})
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := dialN(t, addr, conns)
	time.Sleep(50 * time.Millisecond) // every OnOpen done: the writes below make one batch
	start := time.Now()
	for _, c := range cs {
		if _, err := c.Write(frame([]byte("hi"))); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := readFrame(c); err != nil || string(got) != "hi" {
			t.Fatalf("conn %d: %q %v", i, got, err)
		}
	}
	if took := time.Since(start); took > conns*nap/2 {
		t.Fatalf("%d connections with a %v handler took %v: queued ones waited for blocked workers", conns, nap, took)
	}
}
