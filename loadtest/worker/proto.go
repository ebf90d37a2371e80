package worker

import (
	"time"

	"github.com/mgw-project/mgw/loadtest/client"
	"github.com/mgw-project/mgw/loadtest/hist"
)

// Spec is everything one worker needs, sent as one JSON line on its stdin (not argv, so
// a signing secret does not show in ps).
type Spec struct {
	Index      int           `json:"index"`
	Conns      int           `json:"conns"`
	ConnOffset int           `json:"conn_offset"`
	Target     string        `json:"target"`
	Protocol   string        `json:"protocol"`
	API        string        `json:"api"`
	Body       []byte        `json:"body"`
	AppID      string        `json:"app_id,omitempty"`
	Secret     string        `json:"secret,omitempty"`
	Hello      bool          `json:"hello,omitempty"`
	Timeout    time.Duration `json:"timeout"`
	Sources    []string      `json:"sources,omitempty"`
	Scenario   string        `json:"scenario"`
	Ramp       float64       `json:"ramp"` // connections per second for this worker; 0 = unpaced
	Rate       float64       `json:"rate"` // requests per second for this worker
	Arrival    string        `json:"arrival"`
	Seed       uint64        `json:"seed"`
	Duration   time.Duration `json:"duration"`
	PingEvery  time.Duration `json:"ping_every,omitempty"`
	// Warmup, for steady: load this long first, then reset the counters, report MsgMeasure
	// and run Duration measured.
	Warmup time.Duration `json:"warmup,omitempty"`
	// Nice is the niceness the worker takes before anything else (Options.Nice); 0 none.
	Nice int `json:"nice,omitempty"`
	// Procs is the worker's GOMAXPROCS (Options.WorkerProcs); 0 leaves the runtime's.
	Procs    int `json:"procs,omitempty"`
	Pollers  int `json:"pollers,omitempty"`
	PoolSize int `json:"pool_size,omitempty"`
	// Push, for the push scenario: the connections are devices and Rate is pushes
	// published a second through the admin API (a token travels here, on stdin).
	Push *client.PushConfig `json:"push,omitempty"`
}

// Scenarios the worker knows.
const (
	Steady    = "steady"    // hold the connections, drive the request rate
	Reconnect = "reconnect" // drop every connection at once, reconnect, under the request rate
	SlowRead  = "slowread"  // stop reading every connection while responses flow
	Idle      = "idle"      // no requests, a PING on every connection every PingEvery
	// Overload is one step of the overload scenario: the request rate for Duration, the
	// latency of OK answers only, and how long the slowest refusal (503) took. The parent
	// runs it once per offered rate (loadtest/overload.go).
	Overload = "overload"
	// Push: every connection is a device (HELLO); pushes are published to them at Rate
	// through the admin API, each device acknowledges and drops redeliveries it already
	// processed, some devices drop their connection mid-push and come back; latency is
	// publish to receipt, and at the end nothing published may be missing.
	Push = "push"
	// Upgrade is steady load during which the parent sends the gateway SIGUSR2 (a hot
	// upgrade) halfway through the measured phase: the row shows what clients saw of it.
	Upgrade = "upgrade"
)

// KnownScenario reports whether s is a scenario name.
func KnownScenario(s string) bool {
	switch s {
	case Steady, Reconnect, SlowRead, Idle, Overload, Push, Upgrade:
		return true
	}
	return false
}

// Message types a worker writes, one JSON object per line on stdout.
const (
	MsgTick    = "tick"    // every TickEvery: counters and the interval's histogram
	MsgReady   = "ready"   // the ramp is over; waiting for "go"
	MsgMeasure = "measure" // the warm-up is over; counters restarted from zero
	MsgFinal   = "final"   // the measured phase is over: totals
	MsgFatal   = "fatal"   // the worker cannot go on
)

// Msg is one line from a worker.
type Msg struct {
	Type    string             `json:"type"`
	Worker  int                `json:"worker"`
	Phase   string             `json:"phase,omitempty"` // ramp, load, drain
	Snap    client.Snapshot    `json:"snap"`
	Hist    *hist.Histogram    `json:"hist,omitempty"` // tick: the interval; final: the measured phase
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Error   string             `json:"error,omitempty"`
}

// Commands the parent writes to a worker's stdin after the Spec, one per line. EOF on
// stdin means stop (the parent is gone).
const (
	CmdGo   = "go"
	CmdStop = "stop"
)

// TickEvery is how often a worker reports its counters.
const TickEvery = 250 * time.Millisecond

// MaxLine bounds one message line; a histogram of every bucket is ~100 KB.
const MaxLine = 4 << 20
