package netpoll

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestReadyAtCountsTheWaitForAWorker: with one worker busy on another connection, bytes
// that arrive meanwhile wait for it, and ReadyAt says since when (the gateway counts that
// wait as the request's queue time). On an idle engine ReadyAt falls between the write and
// OnData; rwloop has no queue, so it is the read's end.
func TestReadyAtCountsTheWaitForAWorker(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const hold = 80 * time.Millisecond
		type seen struct{ ready, data time.Time }
		got := make(chan seen, 4)
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			now := time.Now()
			got <- seen{readyOf(c), now}
			if data[0] == 'B' { // the blocker holds the one worker
				time.Sleep(hold)
			}
			return len(data), nil
		}
		_, addr := listenReadyAt(t, Config{Kind: kind, Workers: 1, Pollers: 1}, h)
		a, b := dialTCP(t, addr), dialTCP(t, addr)
		defer a.Close()
		defer b.Close()

		// Idle engine: ready between the write and OnData.
		wrote := time.Now()
		if _, err := b.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		s := <-got
		if s.ready.Before(wrote.Add(-time.Millisecond)) || s.ready.After(s.data) {
			t.Errorf("idle: ready %v after the write, OnData %v after it; want ready within [write, OnData]",
				s.ready.Sub(wrote), s.data.Sub(wrote))
		}

		// Busy engine: b's bytes come while a's handler holds the worker.
		if _, err := a.Write([]byte("B")); err != nil {
			t.Fatal(err)
		}
		blocked := <-got // a's OnData has started and sleeps
		time.Sleep(hold / 4)
		wrote = time.Now()
		if _, err := b.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		s = <-got
		waited := s.data.Sub(s.ready)
		switch kind {
		case "epoll":
			// It waited for the worker: about hold*3/4. Ready no earlier than the write.
			if s.ready.Before(wrote.Add(-time.Millisecond)) || waited < hold/2 {
				t.Errorf("busy: ready %v after the write, OnData %v after ready; want >= %v of wait counted",
					s.ready.Sub(wrote), waited, hold/2)
			}
			if s.data.Sub(blocked.data) < hold {
				t.Errorf("b served %v after a started, want after a's %v", s.data.Sub(blocked.data), hold)
			}
		case "rwloop":
			if waited > hold/2 {
				t.Errorf("rwloop: %v between the read and OnData, want none to speak of", waited)
			}
		}
	})
}

// TestReadyAtAfterPause: bytes held back while the handler paused reading (left unread
// in the socket, or read and left unconsumed, as a pipelined request behind a slow
// answer) did not wait for the reactor: their wait starts when reading resumes.
func TestReadyAtAfterPause(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		for _, pipelined := range []bool{false, true} {
			h := newTestHandler()
			ready := make(chan time.Time, 4)
			paused := make(chan Conn, 1)
			h.onData = func(c Conn, data []byte) (int, error) {
				ready <- readyOf(c)
				if data[0] == 'P' {
					c.PauseRead()
					paused <- c
					return 1, nil // what follows waits for ResumeRead
				}
				return len(data), nil
			}
			_, addr := listenReadyAt(t, Config{Kind: kind, Workers: 2, Pollers: 1}, h)
			a := dialTCP(t, addr)
			defer a.Close()
			if pipelined {
				a.Write([]byte("Pz"))
			} else {
				a.Write([]byte("P"))
			}
			<-ready
			c := <-paused
			if !pipelined {
				a.Write([]byte("z")) // arrives while paused
			}
			time.Sleep(60 * time.Millisecond)
			resumed := time.Now()
			c.ResumeRead()
			select {
			case r := <-ready:
				if r.Before(resumed.Add(-time.Millisecond)) {
					t.Errorf("pipelined %v: ready %v before the resume; a pause is the handler's wait, not the reactor's",
						pipelined, resumed.Sub(r))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("pipelined %v: no OnData after ResumeRead", pipelined)
			}
		}
	})
}

// TestReadyAtKeepsTheOldestUnreadBytes: bytes that wait for the one worker keep their
// stamp when more bytes come for the same connection meanwhile (a multiplexed client
// sends on): the serve counts the wait of the first.
func TestReadyAtKeepsTheOldestUnreadBytes(t *testing.T) {
	const hold = 100 * time.Millisecond
	type seen struct {
		ready, data time.Time
		n           int
	}
	got := make(chan seen, 8)
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		got <- seen{readyOf(c), time.Now(), len(data)}
		if data[0] == 'B' {
			time.Sleep(hold)
		}
		return len(data), nil
	}
	_, addr := listenReadyAt(t, Config{Kind: "epoll", Workers: 1, Pollers: 1}, h)
	a, b := dialTCP(t, addr), dialTCP(t, addr)
	defer a.Close()
	defer b.Close()
	a.Write([]byte("B"))
	blocked := <-got
	first := time.Now()
	b.Write([]byte("x"))
	time.Sleep(hold / 2)
	second := time.Now()
	b.Write([]byte("y")) // while b waits for the worker
	s := <-got
	if s.n != 2 {
		t.Fatalf("b's OnData got %d bytes, want both (the worker was held past the second write)", s.n)
	}
	if !s.ready.Before(second) {
		t.Errorf("ready %v after the first bytes, want their time (the second came %v after them); served %v after a began",
			s.ready.Sub(first), second.Sub(first), s.data.Sub(blocked.data))
	}
}

// TestReadyAtCountsTheWaitAfterResume: a connection whose reads resume while every
// worker is busy waits for one; that wait counts from the resume.
func TestReadyAtCountsTheWaitAfterResume(t *testing.T) {
	const hold = 100 * time.Millisecond
	ready := make(chan time.Time, 8)
	paused := make(chan Conn, 1)
	release := make(chan struct{})
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		switch data[0] {
		case 'B': // holds the one worker until released
			<-release
		case 'P':
			c.PauseRead()
			paused <- c
			return 1, nil // the rest waits for ResumeRead
		default:
			ready <- readyOf(c)
		}
		return len(data), nil
	}
	_, addr := listenReadyAt(t, Config{Kind: "epoll", Workers: 1, Pollers: 1}, h)
	a, b := dialTCP(t, addr), dialTCP(t, addr)
	defer a.Close()
	defer b.Close()
	b.Write([]byte("P"))
	c := <-paused
	time.Sleep(10 * time.Millisecond) // b's worker lets go
	b.Write([]byte("z"))              // arrives while b is paused
	time.Sleep(10 * time.Millisecond)
	a.Write([]byte("B"))
	time.Sleep(20 * time.Millisecond) // a's OnData holds the worker now
	resumed := time.Now()
	c.ResumeRead() // b waits for the worker
	time.Sleep(hold)
	close(release)
	select {
	case r := <-ready:
		if r.Before(resumed.Add(-time.Millisecond)) || time.Since(r) < hold/2 {
			t.Errorf("ready %v after the resume, %v ago; want the resume's time (b waited %v for the worker)",
				r.Sub(resumed), time.Since(r), hold)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b not served after the worker was released")
	}
}

// TestReadyAtAfterBackpressureWhileBusy: bytes that come while a worker serves the
// connection, whose answer then takes the write queue over its soft limit, waited for the
// client to read, not for the reactor.
func TestReadyAtAfterBackpressureWhileBusy(t *testing.T) {
	big := make([]byte, 24<<20)
	ready := make(chan time.Time, 4)
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		if data[0] == 'W' {
			time.Sleep(50 * time.Millisecond) // the next bytes come meanwhile
			c.Write(big)
			return 1, nil
		}
		ready <- readyOf(c)
		return len(data), nil
	}
	_, addr := listenReadyAt(t, Config{Kind: "epoll", Workers: 2, Pollers: 1, WriteSoftLimit: 64 << 10, WriteHardLimit: 64 << 20}, h)
	a := dialTCP(t, addr)
	defer a.Close()
	a.Write([]byte("W"))
	time.Sleep(10 * time.Millisecond)
	a.Write([]byte("z")) // while W's OnData runs
	time.Sleep(150 * time.Millisecond)
	readAfterDrain(t, a, ready)
}

// TestReadyAtAfterWriteBackpressure: a client that reads its answers slowly holds the
// connection's reads back (the write queue over its soft limit); a request it sent
// meanwhile waited for the client, not for the reactor.
func TestReadyAtAfterWriteBackpressure(t *testing.T) {
	big := make([]byte, 24<<20)
	ready := make(chan time.Time, 4)
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		if data[0] == 'W' {
			c.Write(big) // far more than the sockets hold: the rest queues
			return len(data), nil
		}
		ready <- readyOf(c)
		return len(data), nil
	}
	e, addr := listenReadyAt(t, Config{Kind: "epoll", Workers: 2, Pollers: 1, WriteSoftLimit: 64 << 10, WriteHardLimit: 64 << 20}, h)
	a := dialTCP(t, addr)
	defer a.Close()
	a.Write([]byte("W"))
	waitFor(t, 5*time.Second, "the write queue to pass the soft limit", func() bool { return e.Stats().QueuedBytes > 64<<10 })
	a.Write([]byte("z")) // comes while reads are held
	time.Sleep(100 * time.Millisecond)
	readAfterDrain(t, a, ready)
}

// TestReadyAtAfterAServeForRoomToWrite: a connection handed to a worker for room to write
// (its client read some of a queued answer) reads too when it can; bytes that come while
// that serve waits for the worker are stamped when they come, not with the connection's
// last read, long before.
func TestReadyAtAfterAServeForRoomToWrite(t *testing.T) {
	big := make([]byte, 16<<20)
	ready := make(chan time.Time, 4)
	release := make(chan struct{})
	h := newTestHandler()
	h.onData = func(c Conn, data []byte) (int, error) {
		switch data[0] {
		case 'B':
			<-release // holds the one worker
		case 'W':
			c.Write(big) // the sockets take some; the rest queues (under the soft limit)
		default:
			ready <- readyOf(c)
		}
		return len(data), nil
	}
	e, addr := listenReadyAt(t, Config{Kind: "epoll", Workers: 1, Pollers: 1, WriteSoftLimit: 32 << 20, WriteHardLimit: 64 << 20}, h)
	a, b := dialTCP(t, addr), dialTCP(t, addr)
	defer a.Close()
	defer b.Close()
	b.Write([]byte("W"))
	waitFor(t, 5*time.Second, "b's answer to queue", func() bool { return e.Stats().QueuedBytes > 0 })
	time.Sleep(50 * time.Millisecond) // b's last read is now well in the past
	a.Write([]byte("B"))
	time.Sleep(20 * time.Millisecond) // a holds the worker
	if _, err := io.ReadFull(b, make([]byte, 1<<20)); err != nil {
		t.Fatal(err) // room to write: b is handed out for it, and waits for the worker
	}
	time.Sleep(20 * time.Millisecond)
	sent := time.Now()
	b.Write([]byte("z"))
	time.Sleep(20 * time.Millisecond)
	close(release)
	go io.Copy(io.Discard, b)
	select {
	case r := <-ready:
		if r.Before(sent.Add(-time.Millisecond)) {
			t.Errorf("ready %v before z was sent: the stamp of b's last read, not of z", sent.Sub(r))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("z was not read")
	}
}

// listenReadyAt starts an engine with cfg and a listener served by h.
func listenReadyAt(t *testing.T, cfg Config, h Handler) (Engine, net.Addr) {
	t.Helper()
	e := newEngine(t, cfg)
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e, addr
}

// readAfterDrain checks the end of the backpressure tests: the request that waits behind
// an answer a is not reading is not read until a reads, and then counts its wait from
// then (ready gets its ReadyAt), not from when it came.
func readAfterDrain(t *testing.T, a net.Conn, ready <-chan time.Time) {
	t.Helper()
	select {
	case <-ready:
		t.Fatal("the request was read while the write queue was over its soft limit")
	default:
	}
	draining := time.Now()
	go io.Copy(io.Discard, a)
	select {
	case r := <-ready:
		if r.Before(draining) {
			t.Errorf("ready %v before the client started to read; that wait was the client's", draining.Sub(r))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not read after the client drained its answer")
	}
}

// readyOf is c's ReadyAt, checked: the bytes cannot have been ready after the clock
// reading it was worked out from.
func readyOf(c Conn) time.Time {
	ready, now := c.ReadyAt()
	if ready.After(now) {
		panic("ReadyAt: ready " + ready.String() + " after now " + now.String())
	}
	return ready
}

// TestReadyAtClockFollowsTheWallClock: ReadyAt's times are a clock base plus the
// monotonic time since (one clock read), and the sweeper takes the base from the wall
// clock again each tick, so a step of the wall clock (NTP, a VM resumed) shows in them
// within a tick: the auth filter checks request timestamps against them.
func TestReadyAtClockFollowsTheWallClock(t *testing.T) {
	eng := newEngine(t, Config{Kind: "epoll", TimerTick: 10 * time.Millisecond})
	e := eng.(*epollEngine)
	old := *e.clockBase.Load()
	e.clockBase.Store(&old)
	deadline := time.Now().Add(5 * time.Second)
	for e.clockBase.Load() == &old {
		if time.Now().After(deadline) {
			t.Fatal("the clock base was not taken again in 5s of 10ms ticks")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if base := *e.clockBase.Load(); !base.After(old) {
		t.Errorf("new clock base %v not after the old %v", base, old)
	}
	if _, now := e.readyAt(0); time.Since(now).Abs() > time.Second {
		t.Errorf("readyAt's time is %v off the clock", time.Since(now))
	}
}
