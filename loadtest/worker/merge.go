package worker

import (
	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/hist"
)

// Merged is the sum of several workers' reports.
type Merged struct {
	Snap client.Snapshot
	Hist *hist.Histogram
	// Metrics are combined per key by the rule of MergeMetric.
	Metrics map[string]float64
}

// Merge adds up the workers' messages (finals, or latest ticks): counters sum, histograms
// merge, and metrics combine as MergeMetric says.
func Merge(msgs []Msg) Merged {
	m := Merged{Snap: client.Snapshot{Errors: map[string]uint64{}}, Hist: hist.New(), Metrics: map[string]float64{}}
	seen := map[string]bool{}
	for _, w := range msgs {
		m.Snap.Open += w.Snap.Open
		m.Snap.Sent += w.Snap.Sent
		m.Snap.OK += w.Snap.OK
		m.Snap.Retried += w.Snap.Retried
		for k, v := range w.Snap.Errors {
			m.Snap.Errors[k] += v
		}
		m.Hist.Merge(w.Hist)
		for k, v := range w.Metrics {
			if !seen[k] {
				m.Metrics[k] = v
				seen[k] = true
			} else {
				m.Metrics[k] = MergeMetric(k, m.Metrics[k], v)
			}
		}
	}
	return m
}

// Metrics of the overload scenario.
const (
	MetricRefusalMaxMs     = "refusal_max_ms"     // the slowest 503 answer, from its intended send time
	MetricRefusalsOver10ms = "refusals_over_10ms" // 503 answers that took longer than 10 ms
	MetricSendLateMaxMs    = "send_late_max_ms"   // the most a request went out after its intended time
	// The same two refusal figures counted from when each request was written:
	// what is left when the harness's own lateness is taken out.
	MetricSentRefusalMaxMs     = "sent_refusal_max_ms"
	MetricSentRefusalsOver10ms = "sent_refusals_over_10ms"
)

// MetricHarnessProcs is the Go processors (GOMAXPROCS) of the workers, summed: the CPUs
// the harness could use at once.
const MetricHarnessProcs = "harness_procs"

// Metrics of the push scenario (client.PushFigures, summed over the workers).
const (
	MetricPushPublished   = "push_published"
	MetricPushReceived    = "push_received"
	MetricPushProcessed   = "push_processed"
	MetricPushAcked       = "push_acked"
	MetricPushDuplicates  = "push_duplicates"
	MetricPushRedelivered = "push_redelivered"
	MetricPushStale       = "push_stale"
	MetricPushResets      = "push_resets"
	MetricPushReconnects  = "push_reconnects"
	MetricPushLost        = "push_lost"
)

// PushMetrics puts f into metrics under the names above.
func PushMetrics(f client.PushFigures, metrics map[string]float64) {
	for k, v := range map[string]uint64{MetricPushPublished: f.Published, MetricPushReceived: f.Received,
		MetricPushProcessed: f.Processed, MetricPushAcked: f.Acked, MetricPushDuplicates: f.Duplicates,
		MetricPushRedelivered: f.Redelivered, MetricPushStale: f.Stale, MetricPushResets: f.Resets,
		MetricPushReconnects: f.Crashes, MetricPushLost: f.Lost} {
		metrics[k] = float64(v)
	}
}

// MergeMetric combines one scenario metric from two workers: durations take the longest
// (the storm is over when the last worker is back), counts add up.
func MergeMetric(key string, a, b float64) float64 {
	switch key {
	case "reconnect_seconds", MetricRefusalMaxMs, MetricSendLateMaxMs, MetricSentRefusalMaxMs:
		return max(a, b)
	}
	return a + b
}
