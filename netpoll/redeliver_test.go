package netpoll

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestResumeRedeliversPendingBytes is the pipelining case: the handler takes one frame,
// pauses, and answers later from another goroutine. Every later frame already sits in the
// engine's pending bytes, and the client sends nothing more until it has all the answers,
// so only ResumeRead can bring them back to the handler.
func TestResumeRedeliversPendingBytes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if len(data) < 4 {
				return 0, nil
			}
			n := 4 + int(uint32(data[0])<<24|uint32(data[1])<<16|uint32(data[2])<<8|uint32(data[3]))
			if len(data) < n {
				return 0, nil
			}
			msg := append([]byte(nil), data[4:n]...)
			c.PauseRead()
			go func() {
				time.Sleep(time.Millisecond)
				c.Write(frame(msg))
				c.ResumeRead()
			}()
			return n, nil // one frame per delivery, however many are there
		}
		pipelinedEcho(t, kind, h, 50, 10*time.Second)
	})
}

// TestResumeBeforeOnDataReturns is the same pipelining with an answer so fast that
// ResumeRead runs before OnData has returned: the engine has not stored the remaining
// frames as pending yet when the resume comes, and must still hand them back.
func TestResumeBeforeOnDataReturns(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		h.onData = func(c Conn, data []byte) (int, error) {
			if len(data) < 4 {
				return 0, nil
			}
			n := 4 + int(uint32(data[0])<<24|uint32(data[1])<<16|uint32(data[2])<<8|uint32(data[3]))
			if len(data) < n {
				return 0, nil
			}
			msg := append([]byte(nil), data[4:n]...)
			c.PauseRead()
			done := make(chan struct{})
			go func() {
				c.Write(frame(msg))
				c.ResumeRead()
				close(done)
			}()
			<-done
			return n, nil
		}
		pipelinedEcho(t, kind, h, 20, 5*time.Second)
	})
}

// pipelinedEcho sends n frames in one write to a listener served by h and expects them
// echoed in order within d.
func pipelinedEcho(t *testing.T, kind string, h Handler, n int, d time.Duration) {
	t.Helper()
	e := newEngine(t, Config{Kind: kind})
	addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var all []byte
	for i := 0; i < n; i++ {
		all = append(all, frame([]byte(fmt.Sprint("msg-", i)))...)
	}
	conn.Write(all) // one write: the frames arrive together
	conn.SetReadDeadline(time.Now().Add(d))
	for i := 0; i < n; i++ {
		got, err := readFrame(conn)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := fmt.Sprint("msg-", i); string(got) != want {
			t.Fatalf("answer %d = %q, want %q", i, got, want)
		}
	}
}
