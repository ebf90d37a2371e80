package netpoll

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHeaviestFirst(t *testing.T) {
	hs := []holder[string]{{"a", 1}, {"b", 5}, {"c", 3}, {"d", 4}}
	if got := heaviest(hs, 8); !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("heaviest(excess 8) = %v, want [b d]", got)
	}
	if got := heaviest(hs, 0); len(got) != 0 {
		t.Errorf("heaviest(excess 0) = %v, want none", got)
	}
}

// echoRoundTrip sends one small frame on c and checks it comes back.
func echoRoundTrip(t *testing.T, c net.Conn, payload string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(frame([]byte(payload))); err != nil {
		t.Fatalf("echo write: %v", err)
	}
	got, err := readFrame(c)
	if err != nil || string(got) != payload {
		t.Fatalf("echo: got %q, %v; want %q", got, err, payload)
	}
}

// TestQueuedBudget: 8 clients that never read are each written a large answer, 5 to
// 12 MiB, against a 16 MiB budget. The largest queues are closed with ReasonQueuedBudget
// until the sum is under the budget, the smaller ones stay open, and a client that reads
// is served throughout.
func TestQueuedBudget(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		// rwloop counts a batch as queued until all of it is written, the epoll
		// engine only what the socket did not take.
		const budget = 16 << 20
		e := newEngine(t, Config{Kind: kind, TimerTick: 20 * time.Millisecond,
			QueuedBudget: budget, WriteHardLimit: 64 << 20, WriteStallTimeout: -1})
		conns := make(chan Conn, 8)
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			conns <- c
			return len(data), nil
		}
		addr, err := e.Listen("slow", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		echo := newTestHandler()
		eaddr, err := e.Listen("echo", "127.0.0.1:0", echo, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		reader := dialTCP(t, eaddr)
		defer reader.Close()
		echoRoundTrip(t, reader, "before")

		for range 8 {
			c := dialSmallRcvBuf(t, addr)
			if _, err := c.Write([]byte("go")); err != nil {
				t.Fatal(err)
			}
		}
		var slow []Conn
		for range 8 {
			select {
			case c := <-conns:
				slow = append(slow, c)
			case <-time.After(5 * time.Second):
				t.Fatal("slow clients not all seen")
			}
		}
		// Largest first, so whenever the sweeper runs, every queue it could pick is
		// at least as large as any written after it.
		size := map[uint64]int{}
		for i, c := range slow {
			// The kernel takes a few MiB of each on loopback (the send buffer grows).
			n := (12 - i) << 20
			size[c.ID()] = n
			if err := c.Write(make([]byte, n)); err != nil {
				t.Fatalf("write %d bytes: %v", n, err)
			}
		}
		waitFor(t, 10*time.Second, "queued bytes under the budget", func() bool {
			st := e.Stats()
			return st.ClosedBy(ReasonQueuedBudget) > 0 && st.QueuedBytes <= budget
		})
		echoRoundTrip(t, reader, "during")

		minClosed, maxOpen := 1<<62, 0
		for _, c := range slow {
			if c.Closed() {
				minClosed = min(minClosed, size[c.ID()])
			} else {
				maxOpen = max(maxOpen, size[c.ID()])
			}
		}
		h.mu.Lock()
		for id, r := range h.closes {
			if r != ReasonQueuedBudget {
				t.Errorf("conn %d closed with %v, want %v", id, r, ReasonQueuedBudget)
			}
		}
		h.mu.Unlock()
		if maxOpen == 0 {
			t.Errorf("every slow client was closed; the budget needs only the largest")
		}
		if minClosed < maxOpen {
			t.Errorf("closed a %d-byte queue while a %d-byte one stays open: not heaviest first",
				minClosed, maxOpen)
		}
		time.Sleep(100 * time.Millisecond) // a few more ticks
		if q := e.Stats().QueuedBytes; q > budget+12<<20 {
			t.Errorf("QueuedBytes = %d, over the budget %d plus one connection's", q, budget)
		}
		echoRoundTrip(t, reader, "after")
		h.checkCloses(t)
	})
}

// halfFrame sends the header of a frame of size bytes and then part of its payload, in
// the background (the server may stop reading, so the write may never finish).
func halfFrame(t *testing.T, addr net.Addr, size, part int, wg *sync.WaitGroup) net.Conn {
	c := dialTCP(t, addr)
	t.Cleanup(func() { c.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		hdr := binary.BigEndian.AppendUint32(nil, uint32(size))
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write(append(hdr, make([]byte, part)...))
	}()
	return c
}

// TestPendingBudget: 8 clients each send 2 MiB of an 8 MiB frame and stop, against a
// 4 MiB pending budget and a MaxPending that would let each of them keep it all. The
// largest are closed with ReasonPendingBudget until the sum is under, and a fresh
// connection is served.
func TestPendingBudget(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const budget = 4 << 20
		e := newEngine(t, Config{Kind: kind, TimerTick: 20 * time.Millisecond,
			PendingBudget: budget, MaxPending: 64 << 20})
		h := newTestHandler()
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			halfFrame(t, addr, 8<<20, 2<<20, &wg)
		}
		waitFor(t, 10*time.Second, "pending bytes under the budget", func() bool {
			st := e.Stats()
			return st.ClosedBy(ReasonPendingBudget) > 0 && st.PendingBytes <= budget
		})
		time.Sleep(100 * time.Millisecond) // a few more ticks
		// Between ticks the sum may pass the budget again, by less than one connection's.
		if p := e.Stats().PendingBytes; p > budget+2<<20 {
			t.Errorf("PendingBytes = %d, over the budget %d plus one connection's", p, budget)
		}
		fresh := dialTCP(t, addr)
		defer fresh.Close()
		echoRoundTrip(t, fresh, "fresh")
		h.mu.Lock()
		for id, r := range h.closes {
			if r != ReasonPendingBudget {
				t.Errorf("conn %d closed with %v, want %v", id, r, ReasonPendingBudget)
			}
		}
		h.mu.Unlock()
		_ = fresh.Close()
		wg.Wait()
		h.checkCloses(t)
	})
}

// TestBudgetStopThenResume: a connection holding a few pending bytes is not read while a
// heavier one holds the engine over its pending budget; once the sweeper closed the heavy
// one, the stopped connection is served without any new bytes from its peer.
func TestBudgetStopThenResume(t *testing.T) {
	const budget = 1 << 20
	// A long tick, so the stopped phase lasts until the first sweep.
	e := newEngine(t, Config{Kind: "epoll", TimerTick: 2 * time.Second,
		PendingBudget: budget, MaxPending: 64 << 20})
	h := newTestHandler()
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	small := dialTCP(t, addr)
	defer small.Close()
	msg := frame(bytes.Repeat([]byte("x"), 100))
	if _, err := small.Write(msg[:14]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the small partial frame kept", func() bool {
		return e.Stats().PendingBytes == 14
	})
	var wg sync.WaitGroup
	halfFrame(t, addr, 4<<20, 2<<20, &wg)
	waitFor(t, 5*time.Second, "the engine over its pending budget", func() bool {
		return e.Stats().PendingBytes > budget
	})
	if _, err := small.Write(msg[14:]); err != nil {
		t.Fatal(err)
	}
	// Stopped: the rest of the frame is not read while the engine is over.
	_ = small.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := readFrame(small); err == nil {
		t.Fatal("served while the engine was over its pending budget")
	}
	_ = small.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := readFrame(small)
	if err != nil || !bytes.Equal(got, msg[4:]) {
		t.Fatalf("after the heavy one closed: got %d bytes, %v; want the echo", len(got), err)
	}
	st := e.Stats()
	if n := st.ClosedBy(ReasonPendingBudget); n != 1 {
		t.Errorf("ClosedBy(pending_budget) = %d, want 1", n)
	}
	wg.Wait()
}
