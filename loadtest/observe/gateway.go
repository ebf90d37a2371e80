// Package observe reads the two sides of the box under test: the gateway's own account of
// itself (its admin `/v1/stats`) and the kernel's (/proc: sockets, slab caches, limits).
// They are reported apart because a socket's kernel memory (~4 KB) is paid whatever the
// gateway's design, and RSS does not include it.
package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// GatewayStats is the JSON of the gateway's `/v1/stats`.
type GatewayStats struct {
	Engine           string           `json:"engine"`
	PID              int              `json:"pid"`
	UptimeSeconds    float64          `json:"uptime_seconds"`
	Connections      map[string]int64 `json:"connections"`
	ConnectionsTotal int64            `json:"connections_total"`
	Goroutines       int              `json:"goroutines"`
	RSSBytes         uint64           `json:"rss_bytes"`
	HeapInuseBytes   uint64           `json:"heap_inuse_bytes"`
	CPUSeconds       float64          `json:"cpu_seconds"`
	RequestsTotal    uint64           `json:"requests_total"`
	Pool             struct {
		Running int `json:"running"`
		Waiting int `json:"waiting"`
		Cap     int `json:"cap"`
	} `json:"pool"`
	OpenFilesLimit uint64 `json:"open_files_limit"`
	InFlight       int64  `json:"in_flight"`
	// Admission is the gateway's admission control; zero from a gateway without it.
	Admission struct {
		Limit    int64             `json:"limit"`
		InFlight int64             `json:"in_flight"`
		Refused  map[string]uint64 `json:"refused_total"`
		// QueueWaitMs: the last window's average wait, bytes seen ready to start.
		QueueWaitMs float64 `json:"queue_wait_ms"`
	} `json:"admission"`
	// InheritedConnections is what the process took over from the one it upgraded.
	InheritedConnections int64 `json:"inherited_connections"`
}

// maxStatsBody bounds the stats document; it is a few hundred bytes.
const maxStatsBody = 1 << 20

// StatsURL turns what the user gave (host:port, or a URL) into the stats URL.
func StatsURL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	if !strings.Contains(strings.SplitN(s, "://", 2)[1], "/") {
		s += "/v1/stats"
	}
	return s
}

// FetchStats reads url once, within timeout.
func FetchStats(ctx context.Context, client *http.Client, url string, timeout time.Duration) (GatewayStats, error) {
	var st GatewayStats
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, fmt.Errorf("stats %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("stats %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsBody+1))
	if err != nil {
		return st, fmt.Errorf("stats %s: reading: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("stats %s: status %d: %.200s", url, resp.StatusCode, body)
	}
	if len(body) > maxStatsBody {
		return st, fmt.Errorf("stats %s: body over %d bytes", url, maxStatsBody)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("stats %s: not the /v1/stats JSON: %w", url, err)
	}
	if st.Engine == "" {
		// Some other JSON server (a backend that echoes requests): zeros, not figures.
		return st, fmt.Errorf("stats %s: answered JSON without the engine mgw's /v1/stats names: not an mgw admin listener?", url)
	}
	return st, nil
}
