package netpoll

import (
	"runtime"
	"sync/atomic"
)

// counters are an engine's atomic, engine-wide statistics; both engines share the type so
// their Stats mean the same thing.
type counters struct {
	open         atomic.Int64
	accepted     atomic.Uint64
	dialed       atomic.Uint64
	acceptPaused atomic.Uint64
	adopted      atomic.Uint64
	throttled    atomic.Uint64
	closed       [numReasons]atomic.Uint64
	events       atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	queuedBytes  atomic.Int64
	pendingBytes atomic.Int64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Open:            c.open.Load(),
		Accepted:        c.accepted.Load(),
		Dialed:          c.dialed.Load(),
		AcceptPaused:    c.acceptPaused.Load(),
		Adopted:         c.adopted.Load(),
		AcceptThrottled: c.throttled.Load(),
		Events:          c.events.Load(),
		BytesIn:         c.bytesIn.Load(),
		BytesOut:        c.bytesOut.Load(),
		QueuedBytes:     c.queuedBytes.Load(),
		PendingBytes:    c.pendingBytes.Load(),
		Goroutines:      runtime.NumGoroutine(),
	}
	for i := range c.closed {
		s.Closed[i] = c.closed[i].Load()
	}
	return s
}
