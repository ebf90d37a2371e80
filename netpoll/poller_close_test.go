package netpoll

import (
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestEngineCloseWhilePollersPark closes epoll engines while their pollers are parked in
// the runtime netpoller, while events arrive and while connections close on both sides,
// many times over. Every Close must return, the pollers must exit, and no fd may be left
// behind: a leaked epoll fd, or one the runtime still polls after the engine closed it,
// shows up as a growing fd count (or a hang, or a race report).
func TestEngineCloseWhilePollersPark(t *testing.T) {
	const rounds = 30
	base := openFDs(t)
	baseG := runtime.NumGoroutine()
	for r := 0; r < rounds; r++ {
		e, err := New(Config{Kind: "epoll", Pollers: 1 + r%3, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if len(data) > 0 && data[0] == 'x' {
				c.Close() // a server-side close racing the client's traffic
			}
			_ = c.Write(data)
			return len(data), nil
		}
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				buf := make([]byte, 64)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", addr.String(), time.Second)
					if err != nil {
						continue // the listener is closing
					}
					msg := []byte("hello")
					if i%3 == 0 {
						msg = []byte("xbye")
					}
					c.SetDeadline(time.Now().Add(time.Second))
					if _, err := c.Write(msg); err == nil {
						_, _ = c.Read(buf)
					}
					c.Close()
				}
			}(i)
		}
		// Let the pollers park and wake a few times, then close under traffic; every
		// other round, close with nothing in flight, pollers parked and idle.
		if r%2 == 0 {
			time.Sleep(5 * time.Millisecond)
			e.Close()
			close(stop)
		} else {
			close(stop)
			wg.Wait()
			time.Sleep(2 * time.Millisecond)
			e.Close()
		}
		wg.Wait()
		e.Close() // twice: the second is a no-op
	}
	waitFor(t, 10*time.Second, "fds back to the start", func() bool { return openFDs(t) <= base })
	// Pool workers expire in about a second; pollers and sweepers must already be gone.
	waitFor(t, 10*time.Second, "goroutines back to the start", func() bool {
		return runtime.NumGoroutine() <= baseG+2
	})
}
