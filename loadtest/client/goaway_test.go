package client

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/loadtest/hist"
)

// goAwayServer answers every REQUEST at once, except on its first connection: there, on
// the second REQUEST it sends GOAWAY with last-stream-id set to the first one's stream
// plus extra, answers the first only, and closes.
func goAwayServer(t *testing.T, extra uint32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			first := n.Add(1) == 1
			go func() {
				defer c.Close()
				dec := mmtp.NewDecoder(nil)
				var streams []uint32
				for {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					f, err := dec.ReadFrame(c)
					if err != nil {
						return
					}
					switch f.Type {
					case mmtp.TypePing:
						c.Write(mmtp.AppendPong(nil, f.Body))
						continue
					case mmtp.TypeRequest:
					default:
						continue
					}
					ok := mmtp.AppendResponse(nil, f.StreamID, &codec.Response{Status: 200})
					if !first {
						c.Write(ok)
						continue
					}
					streams = append(streams, f.StreamID)
					if len(streams) == 2 {
						c.Write(mmtp.AppendGoAway(nil, streams[0]+extra, mmtp.ReasonShutdown))
						c.Write(mmtp.AppendResponse(nil, streams[0], &codec.Response{Status: 200}))
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestGoAwayRefusedAreRetriedAcceptedAreLost: a request above GOAWAY's last-stream-id was
// never processed and goes out again on another connection (counted retried, answered
// there); one at or below it that the connection closes on is lost, not conn_closed.
func TestGoAwayRefusedAreRetriedAcceptedAreLost(t *testing.T) {
	for _, tc := range []struct {
		name              string
		extra             uint32
		ok, retried, lost uint64
	}{
		{"promise kept", 0, 4, 1, 0},
		{"promise broken", 1, 3, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := goAwayServer(t, tc.extra)
			c, err := New(Config{Target: addr, Protocol: "mmtp", API: "x.y"}, 2, engine(t), hist.NewRecorder())
			if err != nil {
				t.Fatal(err)
			}
			c.Ramp(context.Background(), 0, nil)
			if open := c.Snapshot().Open; open != 2 {
				t.Fatalf("open %d, want 2", open)
			}
			for range 4 {
				c.Fire(time.Now())
			}
			var s Snapshot
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				s = c.Snapshot()
				if s.OK+s.Errors[ErrLost] >= 4 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if s.OK != tc.ok || s.Retried != tc.retried || s.Errors[ErrLost] != tc.lost || s.Errors[ErrClosed] != 0 {
				t.Fatalf("ok %d retried %d lost %d conn_closed %d, want %d %d %d 0 (%+v)",
					s.OK, s.Retried, s.Errors[ErrLost], s.Errors[ErrClosed], tc.ok, tc.retried, tc.lost, s)
			}
		})
	}
}
