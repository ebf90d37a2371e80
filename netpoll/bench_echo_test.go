package netpoll

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkEcho: 64 client connections ping-pong 1 KiB frames through the engine's echo
// handler; ns/op is per round trip, MB/s counts one direction.
func BenchmarkEcho(b *testing.B) {
	for _, kind := range engineKinds {
		b.Run(kind, func(b *testing.B) {
			const conns = 64
			h := newTestHandler()
			e := newEngine(b, Config{Kind: kind})
			addr, err := e.Listen("bench", "127.0.0.1:0", h, ListenerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			cs := make([]net.Conn, conns)
			for i := range cs {
				cs[i] = dialTCP(b, addr)
				defer cs[i].Close()
			}
			msg := frame(make([]byte, 1020))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for _, c := range cs {
				wg.Add(1)
				go func(c net.Conn) {
					defer wg.Done()
					reply := make([]byte, len(msg))
					c.SetDeadline(time.Now().Add(5 * time.Minute))
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Write(msg); err != nil {
							b.Error(err)
							return
						}
						if _, err := io.ReadFull(c, reply); err != nil {
							b.Error(err)
							return
						}
					}
				}(c)
			}
			wg.Wait()
			b.StopTimer()
			st := e.Stats()
			b.ReportMetric(float64(st.Goroutines), "goroutines")
		})
	}
}
