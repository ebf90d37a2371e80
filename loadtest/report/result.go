// Package report holds the result of a load-test run and renders it: JSON (the record),
// a text table in the shape of the reference table of issue 7, and a self-contained HTML
// page with inline SVG charts that opens offline.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/project"
)

// FormatVersion is bumped when Result changes incompatibly.
const FormatVersion = 1

// Result is one invocation of the harness: its parameters, the limits it met, and one Row
// per scenario (or per engine, for compare).
type Result struct {
	Version  int       `json:"version"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Command  string    `json:"command"`
	Params   Params    `json:"params"`
	Limits   Limits    `json:"limits"`
	Rows     []Row     `json:"rows"`
	// Partial is set when the run was interrupted (Ctrl-C, a fatal error); Rows then hold
	// what was measured up to that point.
	Partial bool     `json:"partial"`
	Reason  string   `json:"reason,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// Params are what the user asked for.
type Params struct {
	Target      string        `json:"target"`
	Protocol    string        `json:"protocol"` // mmtp or http1
	Conns       int           `json:"conns"`
	Ramp        float64       `json:"ramp_per_second"`
	Rate        float64       `json:"rate"`
	Arrival     string        `json:"arrival"`
	Duration    time.Duration `json:"duration_ns"`
	API         string        `json:"api"`
	BodyBytes   int           `json:"body_bytes"`
	Signed      bool          `json:"signed"`
	Workers     int           `json:"workers"`
	SourceAddrs []string      `json:"source_addrs,omitempty"`
	Scenarios   []string      `json:"scenarios"`
}

// Limits are the box's limits as the harness found them, and what it did about them.
type Limits struct {
	ClientNofile   uint64   `json:"client_nofile"`
	GatewayNofile  uint64   `json:"gateway_nofile,omitempty"`
	GatewayProcs   int      `json:"gateway_procs,omitempty"` // processes sharing the listener, when more than one
	PortRange      [2]int   `json:"port_range"`
	RequestedConns int      `json:"requested_conns"`
	RunConns       int      `json:"run_conns"`
	PerWorkerConns int      `json:"per_worker_conns"`
	Notes          []string `json:"notes,omitempty"`
}

// Row is one scenario's outcome on one gateway.
type Row struct {
	Name   string `json:"name"`   // scenario, e.g. "steady"
	Engine string `json:"engine"` // gateway engine from /v1/stats, "" when unknown
	// Conns is the connections held at the end of the measured phase; PeakConns the most.
	Conns     int `json:"conns"`
	PeakConns int `json:"peak_conns"`
	// RampSeconds is how long establishing the connections took.
	RampSeconds float64 `json:"ramp_seconds"`
	Seconds     float64 `json:"seconds"` // length of the measured phase
	TargetQPS   float64 `json:"target_qps"`
	Sent        uint64  `json:"sent"`
	OK          uint64  `json:"ok"`  // responses with status 2xx (or PONGs, for idle)
	QPS         float64 `json:"qps"` // OK / Seconds
	Latency     Latency `json:"latency"`
	// Errors counts failures by kind: connect, status_4xx/5xx codes, timeout, closed, protocol...
	Errors map[string]uint64 `json:"errors"`
	// ConnsLost is how many connections the gateway's side closed or reset (not the
	// harness) during the row: the closed_* errors. A hot upgrade or a graceful gateway
	// keeps it at 0; a slowread row counts the slow readers the gateway cut.
	ConnsLost uint64  `json:"conns_lost"`
	Gateway   Gateway `json:"gateway"`
	// Client is the harness's own cost: its worker processes, summed.
	Client Client `json:"client"`
	Kernel Kernel `json:"kernel"`
	// Timeline has one sample per second of the whole row (ramp included).
	Timeline []Sample `json:"timeline"`
	// MemPoints are gateway RSS against established connections, taken on the ramp.
	MemPoints  []project.Point     `json:"mem_points,omitempty"`
	Projection *project.Projection `json:"projection,omitempty"`
	// Hist is the whole latency distribution of the measured phase.
	Hist *hist.Histogram `json:"hist,omitempty"`
	// Notes are scenario-specific findings ("all 9000 back in 2.1s", "RSS stayed bounded").
	Notes []string `json:"notes,omitempty"`
	// Metrics are scenario-specific figures, e.g. reconnect_seconds.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Latency summarises the measured phase, in nanoseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   int64   `json:"p50"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
}

// Summarise fills a Latency from a histogram.
func Summarise(h *hist.Histogram) Latency {
	if h == nil {
		return Latency{}
	}
	return Latency{Count: h.Count(), P50: h.Percentile(50), P99: h.Percentile(99),
		P999: h.Percentile(99.9), Max: h.Max(), Mean: h.Mean()}
}

// Gateway is what /v1/stats said during the measured phase: the peak RSS, the mean CPU,
// the most goroutines and the most connections. When several gateway processes share the
// listener, each figure is their sum (per second, then the peak), PID is the first one's,
// Nofile the open-file limit of each, and Processes holds each process's own figures.
type Gateway struct {
	Available  bool    `json:"available"` // false when the stats endpoint was not given or never answered
	PID        int     `json:"pid,omitempty"`
	RSSBytes   uint64  `json:"rss_bytes"`
	CPUPercent float64 `json:"cpu_percent"` // of one core, averaged over the measured phase
	Goroutines int     `json:"goroutines"`
	Conns      int64   `json:"conns"` // the most it counted during the measured phase
	Nofile     uint64  `json:"nofile,omitempty"`
	// Procs is how many gateway processes the figures are summed over.
	Procs int `json:"procs,omitempty"`
	// IdleRSSBytes and IdleGoroutines are the processes' sum before the run's first
	// connection; PerConnBytes is (RSSBytes - IdleRSSBytes) / the row's connections.
	IdleRSSBytes   uint64        `json:"idle_rss_bytes,omitempty"`
	IdleGoroutines int           `json:"idle_goroutines,omitempty"`
	PerConnBytes   float64       `json:"per_conn_bytes,omitempty"`
	Processes      []GatewayProc `json:"processes,omitempty"`
	// PSSBytes is the most proportional set size summed over the processes (read from
	// /proc on this box): RSS summed counts the pages of the binary they share once per
	// process, PSS once in all. 0 when not readable.
	PSSBytes uint64 `json:"pss_bytes,omitempty"`
}

// GatewayProc is one gateway process's own figures: peaks over the measured phase, CPU
// averaged over it, idle RSS before the run's first connection.
type GatewayProc struct {
	Admin        string  `json:"admin"`
	PID          int     `json:"pid"`
	Nofile       uint64  `json:"nofile,omitempty"`
	IdleRSSBytes uint64  `json:"idle_rss_bytes"`
	RSSBytes     uint64  `json:"rss_bytes"`
	PSSBytes     uint64  `json:"pss_bytes,omitempty"`
	CPUPercent   float64 `json:"cpu_percent"`
	Goroutines   int     `json:"goroutines"`
	Conns        int64   `json:"conns"`
}

// Client is what the harness's worker processes cost while they held the connections:
// peak RSS and mean CPU of the measured phase, summed over workers.
type Client struct {
	Workers    int     `json:"workers"`
	RSSBytes   uint64  `json:"rss_bytes"`
	CPUPercent float64 `json:"cpu_percent"`
}

// Kernel is the box's side, from /proc, at its peak during the row: it is reported apart
// from the gateway's RSS because socket memory is charged to the kernel whatever the
// gateway's design.
type Kernel struct {
	TCPInuse    int64 `json:"tcp_inuse"`
	TCPMemBytes int64 `json:"tcp_mem_bytes"`
	// SlabBytes sums the socket-related slab caches (TCP, sock_inode_cache, dentry, filp,
	// eventpoll); 0 when /proc/slabinfo is not readable.
	SlabBytes    int64 `json:"slab_bytes"`
	SlabReadable bool  `json:"slab_readable"`
}

// Sample is one second of a row.
type Sample struct {
	T float64 `json:"t"` // seconds since the row started
	// Phase is "ramp" (connecting), "warmup", "load" (the measured phase) or "end" (after it).
	Phase      string  `json:"phase"`
	Conns      int     `json:"conns"`
	QPS        float64 `json:"qps"`
	P50        int64   `json:"p50"`
	P99        int64   `json:"p99"`
	P999       int64   `json:"p999"`
	Max        int64   `json:"max"`
	Errors     uint64  `json:"errors"`
	GatewayRSS uint64  `json:"gw_rss"`
	GatewayCPU float64 `json:"gw_cpu"`
	GatewayGor int     `json:"gw_goroutines"`
	GatewayCon int64   `json:"gw_conns"`
	GatewayPSS uint64  `json:"gw_pss,omitempty"` // summed proportional set size (see Gateway.PSSBytes)
	// GatewayWait is the gateway's own account of its queue: admission's queue_wait_ms,
	// the last 100 ms window's average wait from a request's bytes seen ready by the
	// reactor to its start (the most of the gateway processes).
	GatewayWait float64 `json:"gw_queue_wait_ms,omitempty"`
	KernelTCP   int64   `json:"k_tcp_mem"`
	KernelSock  int64   `json:"k_tcp_inuse"`
	ClientRSS   uint64  `json:"client_rss"`
	ClientCPU   float64 `json:"client_cpu"` // percent of one core, all workers
	KernelSlab  int64   `json:"k_slab"`
}

// WriteJSON writes r indented to w.
func (r *Result) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// SaveJSON writes r to path.
func (r *Result) SaveJSON(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("result %s: %w", path, err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("result %s: %w", path, err)
	}
	return f.Close()
}

// SaveHTML writes the HTML report to path.
func (r *Result) SaveHTML(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	return f.Close()
}
