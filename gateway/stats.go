package gateway

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stats is the JSON document of GET /v1/stats: what the load-test harness samples every
// second. Counts are per listener, never per connection.
type Stats struct {
	Engine           string           `json:"engine"`
	PID              int              `json:"pid"`
	UptimeSeconds    float64          `json:"uptime_seconds"`
	Connections      map[string]int64 `json:"connections"`
	ConnectionsTotal int64            `json:"connections_total"`
	Goroutines       int              `json:"goroutines"`
	RSSBytes         int64            `json:"rss_bytes"`
	HeapInuseBytes   uint64           `json:"heap_inuse_bytes"`
	CPUSeconds       float64          `json:"cpu_seconds"`
	RequestsTotal    uint64           `json:"requests_total"`
	InFlight         int64            `json:"in_flight"`
	Pool             PoolStats        `json:"pool"`
	QueuedWriteBytes int64            `json:"queued_write_bytes"`
	PendingReadBytes int64            `json:"pending_read_bytes"`
	OpenFilesLimit   uint64           `json:"open_files_limit"`
	Admission        AdmissionStats   `json:"admission"`
	Push             *PushStats       `json:"push"`
	// InheritedConnections is how many connections this process took over from the one
	// it upgraded (hot upgrade); 0 for a process started fresh.
	InheritedConnections int64 `json:"inherited_connections"`
}

// PoolStats is the occupancy of the reactor's worker pool and the request pool.
type PoolStats struct {
	Running        int `json:"running"`
	Waiting        int `json:"waiting"`
	Cap            int `json:"cap"`
	RequestRunning int `json:"request_running"`
	RequestCap     int `json:"request_cap"`
}

// processRSS reads the resident set size from /proc/self/statm (pages), which is what the
// kernel charges the process and what `ps` shows; Go's own heap figures miss stacks and
// runtime overhead.
func processRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// processCPU is user plus system CPU time of the whole process.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func openFilesLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func pidSelf() int { return os.Getpid() }

func uptime(start time.Time) float64 { return time.Since(start).Seconds() }
