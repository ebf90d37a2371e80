// Package ratelimit is the token-bucket filter: a route's requests are counted per key
// (the API, app, device, user or client address) against a rate and a burst; a refusal is
// answered 429 rate_limited with a retry-after hint in whole seconds.
//
// Buckets live in a table bounded by max_keys (see table): an attacker cycling device ids
// gets at most max_keys buckets (~100 bytes each plus the key), and when the table is full
// the least recently used bucket is forgotten. Forgetting an idle bucket loses nothing;
// forgetting a live one gives its key a fresh burst, so fail_open decides: evict anyway
// (the per-key limit weakens for the evicted keys only, counted degraded) or refuse the
// new key with 429 (counted degraded) until buckets go idle.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/filters"
)

// Name is the filter's registered name.
const Name = "ratelimit"

// DefaultMaxKeys bounds a route's buckets when max_keys is unset.
const DefaultMaxKeys = 100_000

// maxKeyLen bounds the bytes a bucket keeps for its key; longer keys are digested.
const maxKeyLen = 64

// maxMaxKeys keeps a typo (max_keys: 1e12) from becoming a memory promise.
const maxMaxKeys = 1 << 26

// keyKind says what a route's buckets are keyed by.
type keyKind uint8

const (
	keyAPI keyKind = iota
	keyApp
	keyDevice
	keyUser
	keyClient
)

var keyNames = map[string]keyKind{"api": keyAPI, "app": keyApp, "device": keyDevice, "user": keyUser, "client": keyClient}

func keyLabel(k keyKind) string {
	for n, v := range keyNames {
		if v == k {
			return n
		}
	}
	return "?"
}

// Limiter is the ratelimit filter of one route. Safe for concurrent use.
type Limiter struct {
	key       keyKind
	interval  int64 // ns per token
	tolerance int64 // burst * interval
	failOpen  bool
	dryRun    bool
	table     *table
	now       func() time.Time
	log       *slog.Logger
	route     string

	counters *filters.Counters
	rejected *metrics.Counter

	// global is the fleet's shared bucket store (scope: global); nil keeps the limit per
	// instance. The local table stays: it is the limit while the fleet's store fails.
	global    filters.RateBackend
	globalKey string // prefix of this route's keys in the shared store
}

// Options are the ratelimit filter's options: `{ratelimit: {rate: 2000/s, key: device}}`.
// Rate is required.
type Options struct {
	// Rate is N/s, N/m or N/h, N from 1 to MaxRate.
	Rate string `yaml:"rate" json:"rate"`
	// Burst is how many requests may come at once; 0 means one second of Rate (at least 1).
	Burst int `yaml:"burst" json:"burst,omitempty"`
	// Key is what the buckets are counted by: api (the default), app, device, user, client.
	Key string `yaml:"key" json:"key,omitempty"`
	// MaxKeys bounds the buckets, 1 to 2^26; 0 means DefaultMaxKeys.
	MaxKeys int `yaml:"max_keys" json:"max_keys,omitempty"`
	// FailOpen evicts a live bucket when the table is full instead of refusing a new key.
	FailOpen bool `yaml:"fail_open" json:"fail_open,omitempty"`
	// DryRun counts what would be refused and refuses nothing.
	DryRun bool `yaml:"dry_run" json:"dry_run,omitempty"`
	// Scope is local ("": the default; per instance) or global (across the fleet, in
	// fleet.redis; per instance again while Redis is unreachable).
	Scope string `yaml:"scope" json:"scope,omitempty"`
}

// Factory is the filters.Factory of "ratelimit": options from env.Options, which must
// give the rate.
func Factory(env *filters.Env) (filters.Filter, error) { return New(env) }

// New builds a Limiter from env.Options. Errors name the option:
// `routes[3].filters[1].ratelimit.rate: "fast" is not a rate like 2000/s, 100/m or 5/h`.
func New(env *filters.Env) (*Limiter, error) {
	e := env.WithDefaults()
	var o Options
	if err := e.DecodeOptions(&o); err != nil {
		return nil, err
	}
	if o.Rate == "" {
		return nil, e.OptionErrorf("rate", "missing: the filter needs a rate, as in {ratelimit: {rate: 100/s}} (and optionally burst, key, max_keys)")
	}
	interval, oneSecond, err := parseRate(o.Rate)
	if err != nil {
		return nil, e.OptionErrorf("rate", "%v", err)
	}
	burst := o.Burst
	switch {
	case burst < 0:
		return nil, e.OptionErrorf("burst", "%d is negative", burst)
	case burst == 0:
		burst = oneSecond
	}
	if int64(burst) > (1<<62)/interval {
		return nil, e.OptionErrorf("burst", "%d is too large for rate %s", burst, o.Rate)
	}
	kind := keyAPI
	if o.Key != "" {
		k, found := keyNames[o.Key]
		if !found {
			return nil, e.OptionErrorf("key", "%q is not one of api, app, device, user, client", clip(o.Key))
		}
		kind = k
	}
	maxKeys := o.MaxKeys
	switch {
	case maxKeys < 0 || maxKeys > maxMaxKeys:
		return nil, e.OptionErrorf("max_keys", "%d is not between 1 and %d", maxKeys, maxMaxKeys)
	case maxKeys == 0:
		maxKeys = DefaultMaxKeys
	}
	var global filters.RateBackend
	switch o.Scope {
	case "", "local":
	case "global":
		if e.Fleet == nil || e.Fleet.RateLimit == nil {
			return nil, e.OptionErrorf("scope", "global needs fleet.redis: the instances share the limit there")
		}
		global = e.Fleet.RateLimit
	default:
		return nil, e.OptionErrorf("scope", "%q is not local or global", clip(o.Scope))
	}
	// An unchanged route keeps its buckets across config reloads.
	stateKey := fmt.Sprintf("ratelimit|%s|key=%s|max_keys=%d", e.Name, keyLabel(kind), maxKeys)
	tbl := e.State.Get(stateKey, func() any { return newTable(maxKeys, e.Now()) }).(*table)
	l := &Limiter{
		key:       kind,
		interval:  interval,
		tolerance: int64(burst) * interval,
		failOpen:  o.FailOpen,
		dryRun:    o.DryRun,
		table:     tbl,
		now:       e.Now,
		log:       e.Logger,
		route:     e.Name,
		counters:  filters.NewCounters(e.Metrics, Name, e.Name),
		global:    global,
		globalKey: e.Name + "|" + keyLabel(kind) + "|",
	}
	l.rejected = l.counters.Rejections(codec.ErrRateLimited)
	e.Metrics.GetOrCreateGauge(filters.MetricName("mgw_ratelimit_keys", "route", e.Name), tableLen(e.State, stateKey, tbl))
	return l, nil
}

// tableLen returns a gauge function for the route's bucket count (how close it is to
// max_keys). Through the State it reads whichever table the route has now and keeps none
// alive after a Sweep; without a State it reads the one table.
func tableLen(st *filters.State, key string, own *table) func() float64 {
	if st == nil {
		return func() float64 { return float64(own.len()) }
	}
	return func() float64 {
		if t, ok := st.Peek(key).(*table); ok {
			return float64(t.len())
		}
		return 0
	}
}

// Name implements filters.Filter.
func (l *Limiter) Name() string { return Name }

// Receive implements filters.Filter: it spends a token of the request's bucket, or answers
// 429 with retry-after (in dry-run mode it only counts).
func (l *Limiter) Receive(ctx context.Context, req *codec.Request, x *filters.Exchange) *codec.Response {
	if l.global != nil {
		if resp, decided := l.receiveGlobal(ctx, req); decided {
			return resp
		}
	}
	now := int64(filters.Arrival(req, x, l.now).Sub(l.table.base))
	var res takeResult
	var wait int64
	var evicted bool
	if l.key == keyClient {
		// The 16-byte form of the address: a short non-escaping conversion, no allocation.
		a := req.Conn.ClientAddr.Addr().As16()
		res, wait, evicted = l.table.take(string(a[:]), now, l.interval, l.tolerance, l.failOpen)
	} else {
		key := l.keyOf(req)
		if len(key) > maxKeyLen {
			// A 64 KiB device-id must not cost 64 KiB per bucket: long keys are stored as a
			// keyed 128-bit digest (random seeds, so collisions cannot be aimed).
			d := l.table.digest(key)
			res, wait, evicted = l.table.take(string(d[:]), now, l.interval, l.tolerance, l.failOpen)
		} else {
			res, wait, evicted = l.table.take(key, now, l.interval, l.tolerance, l.failOpen)
		}
	}
	if evicted {
		l.counters.Degraded.Inc()
	}
	switch res {
	case allowed:
		return nil
	case full:
		l.counters.Degraded.Inc()
	}
	return l.refuse(wait)
}

func (l *Limiter) refuse(wait int64) *codec.Response {
	if l.dryRun {
		l.counters.DryRunRejected.Inc()
		return nil
	}
	l.rejected.Inc()
	resp := codec.ErrorResponse(429, codec.ErrRateLimited, "rate limit exceeded")
	resp.Header = append(resp.Header, codec.Field{Key: "retry-after", Value: retryAfter(wait)})
	return resp
}

// receiveGlobal spends the request from the fleet's bucket. When the fleet's store
// fails (counted degraded), fail_open admits the request, and otherwise decided is false
// and the instance's own bucket decides: the limit holds per instance until Redis is back.
func (l *Limiter) receiveGlobal(ctx context.Context, req *codec.Request) (resp *codec.Response, decided bool) {
	key := l.keyOf(req)
	if l.key == keyClient {
		key = req.Conn.ClientAddr.Addr().String()
	}
	if len(key) > maxKeyLen {
		// The same digest on every instance (the local table's is seeded per table).
		d := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(d[:16])
	}
	ok, wait, err := l.global.Take(ctx, l.globalKey+key, l.interval, l.tolerance)
	if err != nil {
		l.counters.Degraded.Inc()
		return nil, l.failOpen
	}
	if ok {
		return nil, true
	}
	return l.refuse(int64(wait)), true
}

// Send implements filters.Filter; nothing to do on the way out.
func (l *Limiter) Send(context.Context, *codec.Request, *codec.Response, *filters.Exchange) {}

func (l *Limiter) keyOf(req *codec.Request) string {
	switch l.key {
	case keyApp:
		return req.App()
	case keyDevice:
		return req.Device()
	case keyUser:
		return req.User()
	}
	return req.Operation
}

// retryAfter is wait in whole seconds, rounded up, at least 1.
func retryAfter(wait int64) string {
	s := (wait + int64(time.Second) - 1) / int64(time.Second)
	if s < 1 {
		s = 1
	}
	if s < 10 {
		return string(rune('0' + s))
	}
	return strconv.FormatInt(s, 10)
}

// keys returns the number of buckets held, for tests.
func (l *Limiter) keys() int { return l.table.len() }
