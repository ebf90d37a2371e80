package hist

import "sync"

// Recorder is a Histogram safe for concurrent Record, which also keeps an interval
// histogram that Interval swaps out, for per-second percentiles while a run goes on.
// The lock is held for a few nanoseconds per Record; at the request rates this harness
// drives (thousands per second) it is never contended for long.
type Recorder struct {
	mu       sync.Mutex
	total    *Histogram
	interval *Histogram
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{total: New(), interval: New()}
}

// Record counts v in both the total and the current interval. Any goroutine may call it.
func (r *Recorder) Record(v int64) {
	r.mu.Lock()
	r.total.Record(v)
	r.interval.Record(v)
	r.mu.Unlock()
}

// Interval returns the values recorded since the previous call and starts a new interval.
// The returned histogram belongs to the caller.
func (r *Recorder) Interval() *Histogram {
	fresh := New()
	r.mu.Lock()
	out := r.interval
	r.interval = fresh
	r.mu.Unlock()
	return out
}

// Total returns a copy of everything recorded so far.
func (r *Recorder) Total() *Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total.Clone()
}

// Reset forgets everything recorded so far (the ramp's HELLOs, say) so the measured phase
// starts from zero.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.total.Reset()
	r.interval.Reset()
	r.mu.Unlock()
}
