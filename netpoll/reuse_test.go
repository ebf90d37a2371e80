package netpoll

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFDReuseAfterClose: connections are closed by the server and replaced at once, so
// the kernel hands their fds to new connections, while goroutines keep writing to the old
// ones. A late write must fail with ErrClosed and never reach the new connection on the
// same fd; every client must read only its own greeting and echoes.
func TestFDReuseAfterClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const rounds, parallel = 300, 8
		h := newTestHandler()
		var mu sync.Mutex
		byRemote := map[string]Conn{}
		h.onOpen = func(c Conn) {
			mu.Lock()
			byRemote[c.RemoteAddr().String()] = c
			mu.Unlock()
			c.Write(frame([]byte(fmt.Sprintf("hello %d", c.ID()))))
		}
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var reused, lateOK atomic.Int64
		fds := sync.Map{} // fd → last conn id, epoll only
		var wg sync.WaitGroup
		for p := 0; p < parallel; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds/parallel; r++ {
					c := dialTCP(t, addr)
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					greet, err := readFrame(c)
					if err != nil {
						t.Errorf("greeting: %v", err)
						c.Close()
						return
					}
					mu.Lock()
					sc := byRemote[c.LocalAddr().String()]
					delete(byRemote, c.LocalAddr().String())
					mu.Unlock()
					if want := fmt.Sprintf("hello %d", sc.ID()); string(greet) != want {
						t.Errorf("greeting %q, want %q: bytes of another connection", greet, want)
					}
					if ec, ok := sc.(*econn); ok {
						if prev, loaded := fds.Swap(ec.fd, ec.id); loaded && prev != ec.id {
							reused.Add(1)
						}
					}
					// Echo once, then the server closes and a writer hammers the dead conn.
					c.Write(frame([]byte("ping")))
					if got, err := readFrame(c); err != nil || !bytes.Equal(got, []byte("ping")) {
						t.Errorf("echo: %q %v", got, err)
					}
					sc.Close()
					go func() {
						for i := 0; i < 20; i++ {
							if err := sc.Write(frame([]byte("LATE"))); !errors.Is(err, ErrClosed) {
								lateOK.Add(1)
							}
							time.Sleep(100 * time.Microsecond)
						}
					}()
					c.Close()
				}
			}()
		}
		wg.Wait()
		if n := lateOK.Load(); n != 0 {
			t.Errorf("%d writes to closed conns did not return ErrClosed", n)
		}
		if kind == "epoll" && reused.Load() == 0 {
			t.Errorf("no fd was reused; the test did not exercise reuse")
		}
		t.Logf("fd reuses observed: %d", reused.Load())
		waitFor(t, 5*time.Second, "all closed", func() bool { return e.Stats().Open == 0 })
		h.checkCloses(t)
	})
}
