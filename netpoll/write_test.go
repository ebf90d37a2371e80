package netpoll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestConcurrentWritersNoInterleave: several goroutines write framed messages of mixed
// sizes (big enough to queue) to one connection at once; the client must see every
// message whole, each writer's in order.
func TestConcurrentWritersNoInterleave(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const writers, perWriter = 6, 80
		h := newTestHandler()
		h.onOpen = func(c Conn) {
			for w := 0; w < writers; w++ {
				go func() {
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for seq := 0; seq < perWriter; seq++ {
						p := make([]byte, 8+rng.IntN(32000))
						binary.BigEndian.PutUint32(p, uint32(w))
						binary.BigEndian.PutUint32(p[4:], uint32(seq))
						for i := 8; i < len(p); i++ {
							p[i] = byte(w*31 + seq + i)
						}
						f := frame(p)
						var err error
						if seq%2 == 0 {
							err = c.Write(f)
						} else {
							err = c.Writev(f[:4], f[4:10], f[10:])
						}
						if err != nil {
							t.Errorf("writer %d seq %d: %v", w, seq, err)
							return
						}
					}
				}()
			}
		}
		e := newEngine(t, Config{Kind: kind, WriteSoftLimit: 1 << 20, WriteHardLimit: 64 << 20})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		time.Sleep(20 * time.Millisecond) // let writes queue up behind a full socket
		next := make([]int, writers)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for n := 0; n < writers*perWriter; n++ {
			p, err := readFrame(c)
			if err != nil {
				t.Fatalf("message %d: %v", n, err)
			}
			if err := checkMsg(p, next); err != nil {
				t.Fatalf("message %d: %v", n, err)
			}
		}
	})
}

func checkMsg(p []byte, next []int) error {
	if len(p) < 8 {
		return fmt.Errorf("short message %d bytes", len(p))
	}
	w, seq := int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
	if w >= len(next) || seq != next[w] {
		return fmt.Errorf("writer %d seq %d, expected seq %v", w, seq, next)
	}
	next[w]++
	for i := 8; i < len(p); i++ {
		if p[i] != byte(w*31+seq+i) {
			return fmt.Errorf("writer %d seq %d: byte %d corrupt (interleaved?)", w, seq, i)
		}
	}
	return nil
}

// TestSlowReaderWriteLimit: a client that never reads. Writes go to the queue until the
// hard limit closes the connection with ReasonWriteLimit; the queue never exceeds it.
func TestSlowReaderWriteLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const soft, hard = 64 << 10, 512 << 10
		h := newTestHandler()
		result := make(chan error, 1)
		var e Engine
		h.onOpen = func(c Conn) {
			go func() {
				chunk := make([]byte, 16<<10)
				for i := 0; i < 100000; i++ {
					if err := c.Write(chunk); err != nil {
						result <- err
						return
					}
					if q := e.Stats().QueuedBytes; q > hard {
						result <- fmt.Errorf("queued %d bytes, above hard limit %d", q, hard)
						return
					}
				}
				result <- errors.New("never hit the write limit")
			}()
		}
		e = newEngine(t, Config{Kind: kind, WriteSoftLimit: soft, WriteHardLimit: hard})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		select {
		case err := <-result:
			if !errors.Is(err, ErrWriteLimit) && !errors.Is(err, ErrClosed) {
				t.Fatalf("writer ended with %v, want ErrWriteLimit", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("writer never stopped")
		}
		if r := h.waitClose(t, 5*time.Second); r != ReasonWriteLimit {
			t.Errorf("reason = %v, want write_limit", r)
		}
		st := e.Stats()
		if st.ClosedBy(ReasonWriteLimit) != 1 {
			t.Errorf("closed by write_limit = %d, want 1", st.ClosedBy(ReasonWriteLimit))
		}
		if st.QueuedBytes != 0 {
			t.Errorf("QueuedBytes = %d after close", st.QueuedBytes)
		}
		io.Copy(io.Discard, c) // the client sees the connection end
	})
}

// TestPauseResume: no OnData while paused; the bytes arrive after ResumeRead.
func TestPauseResume(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		var mu sync.Mutex
		var got []byte
		paused := make(chan Conn, 1)
		h.onData = func(c Conn, data []byte) (int, error) {
			mu.Lock()
			first := len(got) == 0
			got = append(got, data...)
			mu.Unlock()
			if first {
				c.PauseRead()
				c.PauseRead() // nests
				paused <- c
			}
			return len(data), nil
		}
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		c.Write([]byte("a"))
		sc := <-paused
		time.Sleep(20 * time.Millisecond) // let the first OnData return
		c.Write([]byte("bcd"))
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n != 1 {
			t.Fatalf("got %d bytes while paused, want 1", n)
		}
		sc.ResumeRead()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		n = len(got)
		mu.Unlock()
		if n != 1 {
			t.Fatalf("got %d bytes after one of two resumes, want 1", n)
		}
		sc.ResumeRead()
		waitFor(t, 5*time.Second, "data after resume", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return string(got) == "abcd"
		})
	})
}
