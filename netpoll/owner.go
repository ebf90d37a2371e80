package netpoll

import "time"

// owner is what a connection shares with its siblings from the same listener (or dial):
// the handler and the name. Keeping it behind one pointer keeps econn small.
type owner struct {
	name    string
	h       Handler
	l       *elistener   // nil for dialed connections
	eng     *epollEngine // the engine serving the connections; nil under rwloop
	idle    time.Duration
	partial time.Duration
	stall   time.Duration // write stall timeout; 0 disables
	// partialTicks and stallTicks are partial and stall in the epoll engine's coarse ticks.
	partialTicks uint32
	stallTicks   uint32
}

// newOwner resolves a listener's timeout overrides against the engine's defaults.
func newOwner(name string, h Handler, cfg *Config, idle, partial, stall time.Duration) *owner {
	o := &owner{name: name, h: h, idle: resolveTimeout(idle, cfg.IdleTimeout),
		partial: resolveTimeout(partial, cfg.PartialTimeout),
		stall:   resolveTimeout(stall, cfg.WriteStallTimeout)}
	o.partialTicks = ticksFor(o.partial, cfg.TimerTick)
	o.stallTicks = ticksFor(o.stall, cfg.TimerTick)
	return o
}

// resolveTimeout: a positive override wins, a negative one disables, zero keeps def.
func resolveTimeout(override, def time.Duration) time.Duration {
	switch {
	case override < 0:
		return 0
	case override > 0:
		return override
	}
	return def
}

// ticksFor is the number of ticks a timeout spans, rounded up.
func ticksFor(d, tick time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min((d+tick-1)/tick, 1<<30))
}
