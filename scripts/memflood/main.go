// Command memflood floods a gateway's MMTP listener with the two memory attacks of issue
// 12 item 10 at once, and checks that fresh clients are answered throughout:
//   - slow readers: connections that ask for large answers (demo.size) on several streams
//     and never read them;
//   - half frames: connections that send part of a large REQUEST frame and stop.
//
// A fresh client counts as answered when it is served, or refused at once with a 503
// overloaded that says when to retry; anything else (no answer in 2 s, another status)
// is printed.
//
// It samples the gateway's /v1/stats (RSS, goroutines, queued and pending bytes) and
// prints the peaks. Loopback only; it stops by itself after -duration.
//
//	go run ./scripts/memflood -target 127.0.0.1:9000 -stats 127.0.0.1:9901
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

func main() {
	target := flag.String("target", "", "gateway MMTP listener, host:port (loopback)")
	stats := flag.String("stats", "", "gateway admin address, host:port")
	slow := flag.Int("slow", 200, "slow-reader connections")
	streams := flag.Int("streams", 8, "streams per slow reader")
	answer := flag.Int("answer", 1<<20, "bytes each slow reader's call asks for (demo.size)")
	half := flag.Int("half", 1000, "half-frame connections")
	frame := flag.Int("frame", 4<<20, "body size the half frames declare")
	sent := flag.Int("sent", 2<<20, "bytes of each half frame actually sent")
	duration := flag.Duration("duration", 20*time.Second, "how long to hold the flood")
	flag.Parse()
	if *target == "" || *stats == "" {
		fmt.Fprintln(os.Stderr, "memflood: -target and -stats are required")
		os.Exit(2)
	}
	if h, _, err := net.SplitHostPort(*target); err != nil || !net.ParseIP(h).IsLoopback() {
		fmt.Fprintln(os.Stderr, "memflood: -target must be a loopback host:port")
		os.Exit(2)
	}
	base := sample(*stats)
	fmt.Printf("idle: rss %.1f MiB, goroutines %d\n", mib(base.RSS), base.Goroutines)

	var conns []net.Conn
	var mu sync.Mutex
	keep := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	var opened, failed atomic.Int64
	var wg sync.WaitGroup
	// flood opens n connections that each send msg once and are then left alone.
	flood := func(n int, msg []byte, rcvBuf int) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", *target, 5*time.Second)
				if err != nil {
					failed.Add(1)
					return
				}
				if rcvBuf > 0 {
					c.(*net.TCPConn).SetReadBuffer(rcvBuf)
				}
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				c.Write(msg)
				opened.Add(1)
				keep(c)
			}()
		}
	}
	// Slow readers: several large answers asked for, never read (a small receive buffer).
	var asks []byte
	for s := 0; s < *streams; s++ {
		asks = mmtp.AppendRequest(asks, uint32(2*s+1), "demo.size", nil, []byte(fmt.Sprint(*answer)), false)
	}
	flood(*slow, asks, 4096)
	// A half frame: a REQUEST whose head declares frame bytes of body, cut after sent.
	whole := mmtp.AppendRequest(nil, 1, "demo.echo", nil, make([]byte, *frame), false)
	flood(*half, whole[:min(len(whole), len(whole)-*frame+*sent)], 0)

	// Fresh clients, one every 200 ms, each must be answered within 2 s: served (200), or
	// refused at once (503 overloaded, which a client retries after its retry-after).
	var fresh, freshServed, freshRefused atomic.Int64
	var slowestRefusal atomic.Int64
	stop := make(chan struct{})
	var probe sync.WaitGroup
	probe.Add(1)
	go func() {
		defer probe.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			fresh.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			cl, err := client.Dial(ctx, *target, client.Options{})
			if err == nil {
				sent := time.Now()
				resp, cerr := cl.Call(ctx, "demo.echo", nil, []byte("fresh"))
				took := time.Since(sent)
				err = cerr
				switch {
				case err != nil:
				case resp.Status == 200 && string(resp.Body) == "fresh":
					freshServed.Add(1)
				case resp.Status == 503 && resp.Header.Value("error") == "unavailable" && resp.Header.Value("retry-after") != "":
					freshRefused.Add(1)
					for s := slowestRefusal.Load(); int64(took) > s && !slowestRefusal.CompareAndSwap(s, int64(took)); s = slowestRefusal.Load() {
					}
					fmt.Printf("fresh client: refused 503 overloaded in %v: %s\n", took.Round(time.Microsecond), resp.Body)
				default:
					err = fmt.Errorf("status %d %q", resp.Status, resp.Body)
				}
				cl.Close()
			}
			cancel()
			if err != nil {
				fmt.Println("fresh client:", err)
			}
		}
	}()

	var peak stat
	end := time.Now().Add(*duration)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		s := sample(*stats)
		peak.RSS = max(peak.RSS, s.RSS)
		peak.Goroutines = max(peak.Goroutines, s.Goroutines)
		peak.Queued = max(peak.Queued, s.Queued)
		peak.Pending = max(peak.Pending, s.Pending)
	}
	close(stop)
	probe.Wait()
	wg.Wait()
	last := sample(*stats)
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	time.Sleep(2 * time.Second)
	after := sample(*stats)
	fmt.Printf("flood: %d slow readers x %d streams of %d B, %d half frames (%d of %d B); %d opened, %d failed to open\n",
		*slow, *streams, *answer, *half, *sent, *frame, opened.Load(), failed.Load())
	fmt.Printf("peak: rss %.1f MiB, goroutines %d, queued %.1f MiB, pending %.1f MiB\n",
		mib(peak.RSS), peak.Goroutines, mib(peak.Queued), mib(peak.Pending))
	fmt.Printf("at the end of the flood: rss %.1f MiB, goroutines %d, open connections %d\n", mib(last.RSS), last.Goroutines, last.Conns)
	fmt.Printf("2 s after the flood closed: rss %.1f MiB, goroutines %d\n", mib(after.RSS), after.Goroutines)
	fmt.Printf("fresh clients: %d of %d answered within 2 s: %d served, %d refused 503 overloaded (slowest refusal %v)\n",
		freshServed.Load()+freshRefused.Load(), fresh.Load(), freshServed.Load(), freshRefused.Load(),
		time.Duration(slowestRefusal.Load()).Round(time.Microsecond))
}

type stat struct {
	RSS        int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
	Queued     int64 `json:"queued_write_bytes"`
	Pending    int64 `json:"pending_read_bytes"`
	Conns      int64 `json:"connections_total"`
}

func sample(addr string) stat {
	var s stat
	c := http.Client{Timeout: 2 * time.Second}
	r, err := c.Get("http://" + addr + "/v1/stats")
	if err != nil {
		return s
	}
	defer r.Body.Close()
	json.NewDecoder(r.Body).Decode(&s)
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
