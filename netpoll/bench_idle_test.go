package netpoll

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const idleClientEnv = "MGW_IDLE_CLIENT"

// runIdleClient is the child process: open N connections to addr (spread over several
// loopback source addresses so ephemeral ports never run out), print "ready", and hold
// them silently until stdin closes.
func runIdleClient(spec string) int {
	addr, nstr, ok := strings.Cut(spec, ",")
	n, err := strconv.Atoi(nstr)
	if !ok || err != nil || n < 0 || n > 19000 {
		fmt.Fprintf(os.Stderr, "%s=%q: want addr,N with N <= 19000\n", idleClientEnv, spec)
		return 2
	}
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	const dialers = 32
	for d := 0; d < dialers; d++ {
		wg.Add(1)
		go func(d int) {
			defer wg.Done()
			for i := d; i < n; i += dialers {
				dl := net.Dialer{Timeout: 30 * time.Second,
					LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%16))}}
				c, err := dl.Dial("tcp", addr)
				if err != nil {
					select {
					case errs <- fmt.Errorf("conn %d: %w", i, err):
					default:
					}
					return
				}
				conns[i] = c
			}
		}(d)
	}
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Fprintln(os.Stderr, "idle client:", err)
		return 1
	default:
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

type idleSample struct {
	n          int
	rssKB      int64
	goroutines int
	sockMemPg  int64 // /proc/net/sockstat TCP mem, pages (both ends of loopback)
	slabBytes  int64 // socket-related slab caches, bytes (both ends), -1 if unreadable
	heapLive   uint64
	heapInuse  uint64
}

// BenchmarkIdleCost measures what an idle connection costs the server: RSS slope per
// connection, goroutines, and the kernel's side, at several N held by a separate client
// process. Run: go test -run '^$' -bench BenchmarkIdleCost -benchtime 1x ./netpoll/
// (MGW_IDLE_NS="2000,8000,18000" overrides the points).
func BenchmarkIdleCost(b *testing.B) {
	ns := []int{2000, 8000, 18000}
	if s := os.Getenv("MGW_IDLE_NS"); s != "" {
		ns = ns[:0]
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v <= 0 {
				b.Fatalf("MGW_IDLE_NS=%q: bad count %q", s, f)
			}
			ns = append(ns, v)
		}
	}
	for _, kind := range engineKinds {
		b.Run(kind, func(b *testing.B) {
			if raceEnabled && kind == "rwloop" {
				b.Skip("the race detector caps goroutines at 8128")
			}
			e := newEngine(b, Config{Kind: kind, IdleTimeout: time.Hour})
			addr, err := e.Listen("idle", "127.0.0.1:0", idleHandler{}, ListenerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			base := measureIdle(0)
			samples := []idleSample{}
			for i := 0; i < b.N; i++ { // -benchtime 1x: one pass
				samples = samples[:0]
				for _, n := range ns {
					samples = append(samples, holdIdle(b, e, addr, n))
				}
			}
			b.Logf("%s engine, baseline RSS %d KiB, %d goroutines", kind, base.rssKB, base.goroutines)
			b.Logf("%8s %10s %12s %12s %11s %14s %14s", "conns", "RSS KiB", "user B/conn", "heap B/conn",
				"goroutines", "sock mem B/c", "slab B/conn")
			for _, s := range samples {
				b.Logf("%8d %10d %12.0f %12.0f %11d %14.0f %14s", s.n, s.rssKB,
					float64(s.rssKB-base.rssKB)*1024/float64(s.n),
					float64(int64(s.heapLive)-int64(base.heapLive))/float64(s.n), s.goroutines,
					float64(s.sockMemPg-base.sockMemPg)*float64(os.Getpagesize())/float64(s.n),
					slabPerConn(s, base))
			}
			first, last := samples[0], samples[len(samples)-1]
			if len(samples) > 1 && last.n > first.n {
				slope := float64(last.rssKB-first.rssKB) * 1024 / float64(last.n-first.n)
				b.Logf("slope %d→%d conns: %.0f B of server RSS per idle connection", first.n, last.n, slope)
				b.ReportMetric(slope, "B/conn")
			}
			b.ReportMetric(float64(last.goroutines), "goroutines")
		})
	}
}

func slabPerConn(s, base idleSample) string {
	if s.slabBytes < 0 || base.slabBytes < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", float64(s.slabBytes-base.slabBytes)/float64(s.n))
}

// holdIdle starts the client process with n connections, waits until the server has
// them all, measures, and ends the client.
func holdIdle(b *testing.B, e Engine, addr net.Addr, n int) idleSample {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", idleClientEnv, addr, n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
		deadline := time.Now().Add(60 * time.Second)
		for e.Stats().Open != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("idle client with %d conns: %q %v", n, line, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for e.Stats().Open != int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("server holds %d of %d connections", e.Stats().Open, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let the burst's transient goroutines (pool workers that served the previous
	// client's closes) expire, so the sample shows the idle steady state.
	time.Sleep(2*poolExpiry + 500*time.Millisecond)
	return measureIdle(n)
}

func measureIdle(n int) idleSample {
	runtime.GC()
	debug.FreeOSMemory()
	s := idleSample{n: n, goroutines: runtime.NumGoroutine(), slabBytes: -1}
	s.rssKB = procField("/proc/self/status", "VmRSS:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heapLive, s.heapInuse = ms.HeapAlloc, ms.HeapInuse
	s.sockMemPg = sockstatTCPMem()
	s.slabBytes = socketSlabBytes()
	return s
}

// procField reads a "Name: value kB" line.
func procField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			f := strings.Fields(l[len(name):])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

func sockstatTCPMem() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "TCP:") {
			continue
		}
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				v, _ := strconv.ParseInt(f[i+1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// socketSlabBytes sums the slab caches a TCP connection uses (socket, inode, dentry,
// file, epoll item), as active objects × object size; -1 without /proc/slabinfo.
func socketSlabBytes() int64 {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return -1
	}
	caches := map[string]bool{"TCP": true, "TCPv6": true, "sock_inode_cache": true,
		"dentry": true, "filp": true, "eventpoll_epi": true, "eventpoll_pwq": true,
		"skbuff_head_cache": true, "kmalloc-1k": false}
	var total int64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !caches[f[0]] {
			continue
		}
		active, _ := strconv.ParseInt(f[1], 10, 64)
		size, _ := strconv.ParseInt(f[3], 10, 64)
		total += active * size
	}
	return total
}

// idleHandler keeps no per-connection state, so the measurement is the engine's alone.
type idleHandler struct{}

func (idleHandler) OnOpen(Conn)                          {}
func (idleHandler) OnData(c Conn, d []byte) (int, error) { return echoFrames(c, d) }
func (idleHandler) OnTimeout(Conn, TimeoutKind)          {}
func (idleHandler) OnClose(Conn, CloseReason)            {}
