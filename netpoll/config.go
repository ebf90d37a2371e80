package netpoll

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultReadPerEvent   = 64 << 10
	DefaultMaxPending     = 4<<20 + 80<<10
	DefaultWriteSoftLimit = 1 << 20
	DefaultWriteHardLimit = 8 << 20
	DefaultMaxConns       = 1 << 20
	DefaultTimerTick      = time.Second
	DefaultKeepAlive      = 60 * time.Second
	DefaultWriteStall     = 30 * time.Second
	DefaultQueuedBudget   = 256 << 20 // without a Go memory limit
	DefaultPendingBudget  = 256 << 20 // without a Go memory limit
)

// defaultWorkersPerProc sizes the reactor's pool. A worker never waits on a peer (OnData
// hands slow work on; a proxied body goes into a bounded buffer, a backend connect is
// DialAsync), only on a syscall or the GC's assist, so a few per core keep every core
// busy; more only add goroutines when a flood makes many connections ready at once (256
// per core let a flood of 1,000 half frames raise 500 of them, 32 per core 64, all in
// read(2) or GC assist). Connections beyond the pool wait in the ready queue, which
// costs nothing. 8 and 32 per core served scripts/bench-http.sh alike (docs/benchmarks.md).
const defaultWorkersPerProc = 8

// Budgets resolves Config.QueuedBudget and PendingBudget as New does: 0 takes the
// default, a negative value (off) stays negative.
func Budgets(queued, pending int64) (int64, int64) {
	if queued == 0 {
		queued = budgetDefault(DefaultQueuedBudget)
	}
	if pending == 0 {
		pending = budgetDefault(DefaultPendingBudget)
	}
	return queued, pending
}

// budgetDefault is a budget's default: a quarter of the Go memory limit when one is set
// (math.MaxInt64 means none), so queued writes and pending reads together stay within half
// of it; else def.
func budgetDefault(def int64) int64 {
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim != math.MaxInt64 {
		return lim / 4
	}
	return def
}

// withDefaults returns cfg with zero fields set to their defaults, or an error naming the
// first field whose value is unusable.
func (cfg Config) withDefaults() (Config, error) {
	procs := runtime.GOMAXPROCS(0)
	if cfg.Kind == "" {
		cfg.Kind = "epoll"
	}
	if cfg.Pollers == 0 {
		cfg.Pollers = procs
	}
	if cfg.Workers == 0 {
		cfg.Workers = defaultWorkersPerProc * procs
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.ReadPerEvent == 0 {
		cfg.ReadPerEvent = DefaultReadPerEvent
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.WriteSoftLimit == 0 {
		cfg.WriteSoftLimit = DefaultWriteSoftLimit
	}
	if cfg.WriteHardLimit == 0 {
		cfg.WriteHardLimit = DefaultWriteHardLimit
	}
	if cfg.TimerTick == 0 {
		cfg.TimerTick = DefaultTimerTick
	}
	if cfg.WriteStallTimeout == 0 {
		cfg.WriteStallTimeout = DefaultWriteStall
	} else if cfg.WriteStallTimeout < 0 {
		cfg.WriteStallTimeout = 0 // resolveTimeout reads 0 as off
	}
	cfg.QueuedBudget, cfg.PendingBudget = Budgets(cfg.QueuedBudget, cfg.PendingBudget)
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	checks := []struct {
		name string
		v    int64
	}{
		{"Pollers", int64(cfg.Pollers)}, {"Workers", int64(cfg.Workers)},
		{"MaxConns", int64(cfg.MaxConns)}, {"ReadPerEvent", int64(cfg.ReadPerEvent)},
		{"MaxPending", int64(cfg.MaxPending)}, {"WriteSoftLimit", int64(cfg.WriteSoftLimit)},
		{"WriteHardLimit", int64(cfg.WriteHardLimit)}, {"TimerTick", int64(cfg.TimerTick)},
		{"IdleTimeout", int64(cfg.IdleTimeout) + 1}, {"PartialTimeout", int64(cfg.PartialTimeout) + 1},
	}
	for _, c := range checks {
		if c.v <= 0 {
			return cfg, fmt.Errorf("netpoll config: %s must be positive, got %d", c.name, c.v)
		}
	}
	if cfg.WriteSoftLimit > cfg.WriteHardLimit {
		return cfg, fmt.Errorf("netpoll config: WriteSoftLimit %d above WriteHardLimit %d",
			cfg.WriteSoftLimit, cfg.WriteHardLimit)
	}
	if cfg.RxTimestamps && cfg.Kind != "epoll" {
		return cfg, fmt.Errorf("netpoll config: RxTimestamps: the %s engine has no receive timestamps (epoll only)", cfg.Kind)
	}
	if cfg.Pollers > 64 {
		return cfg, fmt.Errorf("netpoll config: Pollers %d above 64", cfg.Pollers)
	}
	return cfg, nil
}

// New builds the engine named by cfg.Kind: "epoll" (the default) or "rwloop".
func New(cfg Config) (Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case "epoll":
		return newEpollEngine(cfg)
	case "rwloop":
		return newRWLoopEngine(cfg), nil
	}
	return nil, fmt.Errorf("netpoll config: Kind %q: %w (want epoll or rwloop)", cfg.Kind, ErrUnknownKind)
}
