// Package auth is the signature-auth filter (mmtp.md "Signature") for MMTP and HTTP: the
// same fields arrive as MMTP headers or as the HTTP headers App-Id, Device-Id, Timestamp,
// Nonce and Sign, which the codecs lowercase into the same keys.
//
// One Authenticator serves one route (the filter) or one MMTP listener (its HELLO check).
// It holds the apps' keys, the clock-skew window and, with replay protection, a bounded
// store of the nonces seen inside the window.
package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
)

// Name is the filter's registered name.
const Name = "auth"

// DefaultSkew is the clock-skew window when the route does not set one.
const DefaultSkew = 300 * time.Second

// maxSkew keeps skew arithmetic (in ms) far from overflow and nonces from living for ages.
const maxSkew = 24 * time.Hour

// Authenticator checks signed requests. It is a filters.Filter and also offers what an
// MMTP session needs for HELLO. Safe for concurrent use.
type Authenticator struct {
	route    string
	apps     map[string]*app
	skewMs   int64
	replay   bool
	failOpen bool
	dryRun   bool
	nonces   *nonceStore // shared by every Authenticator of the gateway
	now      func() time.Time
	log      *slog.Logger

	counters *filters.Counters
	rejected [numReasons]*metrics.Counter // mgw_filter_rejections_total by the reason's code
	failures [numReasons]*metrics.Counter // mgw_auth_failures_total{route,reason}

	// fleet remembers nonces for every instance of a fleet (fleet.redis); nil: per
	// instance. While it fails, nonces is the store (counted degraded).
	fleet filters.NonceBackend
}

// Options are the auth filter's options, on a route or a listener:
// `{auth: {skew: 60s, replay: true}}`. Every one may be left out.
type Options struct {
	// Skew is the clock-skew window for the timestamp, 1s to 24h; 0 means DefaultSkew.
	Skew config.Duration `yaml:"skew" json:"skew,omitempty"`
	// Replay requires a nonce and refuses one already seen inside the window.
	Replay bool `yaml:"replay" json:"replay,omitempty"`
	// FailOpen admits a request whose nonce the full replay store cannot record (the
	// default refuses it with 503).
	FailOpen bool `yaml:"fail_open" json:"fail_open,omitempty"`
	// DryRun counts what would be refused and refuses nothing (never for HELLO).
	DryRun bool `yaml:"dry_run" json:"dry_run,omitempty"`
}

// Factory is the filters.Factory of "auth": options from env.Options, apps from env.Apps.
func Factory(env *filters.Env) (filters.Filter, error) { return New(env) }

// New builds an Authenticator from env: its Options (all defaults when nil, as for the
// HELLO check of a listener without auth options) and env.Apps' keys. env need not have
// been through Build: nil hooks take their defaults. Errors name the option.
func New(env *filters.Env) (*Authenticator, error) {
	e := env.WithDefaults()
	var opts Options
	if err := e.DecodeOptions(&opts); err != nil {
		return nil, err
	}
	skew := opts.Skew.D()
	switch {
	case skew == 0:
		skew = DefaultSkew
	case skew < time.Second || skew > maxSkew:
		return nil, e.OptionErrorf("skew", "%v is not between 1s and %v", skew, maxSkew)
	}
	apps, err := loadApps(e.Apps, e.Getenv, e.Logger)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{
		route:    e.Name,
		apps:     apps,
		skewMs:   skew.Milliseconds(),
		replay:   opts.Replay,
		failOpen: opts.FailOpen,
		dryRun:   opts.DryRun,
		now:      e.Now,
		log:      e.Logger,
		counters: filters.NewCounters(e.Metrics, Name, e.Name),
	}
	for r := reason(1); r < numReasons; r++ {
		a.rejected[r] = a.counters.Rejections(reasonInfo[r].code)
		a.failures[r] = a.counters.Metric("mgw_auth_failures_total", "reason", r.String())
	}
	// Nonces are per app across the whole gateway (mmtp.md: a nonce already seen for that
	// app inside the window, on any connection, is refused), so every route's and the
	// HELLO check's Authenticator share one store. It outlives rebuilds on a reload:
	// otherwise a request captured before the reload could be replayed after it. It costs
	// memory only for nonces actually sent.
	key := fmt.Sprintf("auth|nonces|max=%d", DefaultMaxNonces)
	a.nonces = e.State.Get(key, func() any { return newNonceStore(DefaultMaxNonces) }).(*nonceStore)
	if e.Fleet != nil {
		a.fleet = e.Fleet.Nonces
	}
	e.Metrics.GetOrCreateGauge("mgw_auth_nonce_entries", storeLen(e.State, key, a.nonces))
	return a, nil
}

// storeLen returns a gauge function for a replay store's size. Through the State it reads
// whichever store the route has now and keeps none alive after a Sweep; without a State it
// reads the one store.
func storeLen(st *filters.State, key string, own *nonceStore) func() float64 {
	if st == nil {
		return func() float64 { return float64(own.len()) }
	}
	return func() float64 {
		if ns, ok := st.Peek(key).(*nonceStore); ok {
			return float64(ns.len())
		}
		return 0
	}
}

// ForHello returns the Authenticator to check HELLOs with: a itself, or a copy that
// refuses for real when a is in dry-run mode. A HELLO binds the identity that later
// requests and push deliveries trust, so it is never waved through.
func (a *Authenticator) ForHello() *Authenticator {
	if !a.dryRun {
		return a
	}
	h := *a
	h.dryRun = false
	return &h
}

// Name implements filters.Filter.
func (a *Authenticator) Name() string { return Name }

// Receive implements filters.Filter: it checks the request's signature, timestamp, nonce
// (with replay protection), its identity against the connection's HELLO, and the app's
// allow-list. It answers 401, 403 or (replay store full, fail closed) 503; in dry-run mode
// it only counts what it would refuse.
func (a *Authenticator) Receive(ctx context.Context, req *codec.Request, x *filters.Exchange) *codec.Response {
	recorded := new(bool)
	if x != nil {
		recorded = &x.NonceRecorded
	}
	return a.verdict(ctx, req, a.check(req, req.Operation, true, filters.Arrival(req, x, a.now), recorded))
}

// Send implements filters.Filter; auth has nothing to do on the way out.
func (a *Authenticator) Send(context.Context, *codec.Request, *codec.Response, *filters.Exchange) {}

// Hello checks an MMTP HELLO: the signature with operation mmtp.hello over its app-id,
// device-id, timestamp and nonce, and the timestamp window (and nonce, with replay
// protection). nil means accepted: the session then binds req.App() and req.Device() to
// the connection (ConnInfo.AppID, DeviceID) and answers 200. Otherwise it returns the
// 401 to send, and the connection stays unbound. Called by the session on the worker
// that decoded the HELLO. An Authenticator in dry-run mode accepts every HELLO (and
// counts the ones it would refuse), so give the session one without dry_run.
func (a *Authenticator) Hello(ctx context.Context, req *codec.Request) *codec.Response {
	return a.verdict(ctx, req, a.check(req, mmtp.HelloOperation, false, filters.Arrival(req, nil, a.now), new(bool)))
}

// HelloRequired returns the 401 for a REQUEST that came before a successful HELLO on a
// listener with require_hello, and counts it.
func (a *Authenticator) HelloRequired() *codec.Response {
	a.failures[noHello].Inc()
	a.rejected[noHello].Inc()
	return noHello.response()
}

// HelloRequiredResponse is HelloRequired without the counting, for a session that has
// no Authenticator.
func HelloRequiredResponse() *codec.Response { return noHello.response() }

// verdict turns a reason into the filter's answer, counting it, honouring dry-run.
func (a *Authenticator) verdict(ctx context.Context, req *codec.Request, r reason) *codec.Response {
	if r == ok {
		return nil
	}
	a.failures[r].Inc()
	if a.log.Enabled(ctx, slog.LevelDebug) {
		// Never the signature, the key or the body.
		a.log.LogAttrs(ctx, slog.LevelDebug, "auth refused",
			slog.String("route", a.route), slog.String("reason", r.String()),
			slog.String("app", req.App()), slog.String("device", req.Device()),
			slog.String("api", req.Operation), slog.Bool("dry_run", a.dryRun))
	}
	if a.dryRun {
		a.counters.DryRunRejected.Inc()
		return nil
	}
	a.rejected[r].Inc()
	return r.response()
}

// check runs every test on req, signed as operation op, arrived at now, and returns the
// first failure.
func (a *Authenticator) check(req *codec.Request, op string, checkAllow bool, now time.Time, recorded *bool) reason {
	// A REQUEST may omit app-id and device-id after HELLO, but may not contradict it.
	if v := req.Header.Value("app-id"); v != "" && req.Conn.AppID != "" && v != req.Conn.AppID {
		return identityMismatch
	}
	if v := req.Header.Value("device-id"); v != "" && req.Conn.DeviceID != "" && v != req.Conn.DeviceID {
		return identityMismatch
	}
	appID := req.App()
	if appID == "" {
		return missingAppID
	}
	deviceID := req.Device()
	if deviceID == "" {
		return missingDeviceID
	}
	ts, present := req.Header.Get("timestamp")
	if !present || ts == "" {
		return missingTimestamp
	}
	tsMs, okTs := parseMillis(ts)
	if !okTs {
		return badTimestamp
	}
	nowMs := now.UnixMilli()
	if nowMs-tsMs > a.skewMs {
		return staleTimestamp
	}
	if tsMs-nowMs > a.skewMs {
		return futureTimestamp
	}
	sign := req.Header.Value("sign")
	if sign == "" {
		return missingSign
	}
	nonce := req.Header.Value("nonce")
	if a.replay && nonce == "" {
		return missingNonce
	}
	ap := a.apps[appID]
	if ap == nil || !ap.hasKey {
		return unknownApp
	}
	f := mmtp.SignFields{Operation: op, AppID: appID, DeviceID: deviceID, Timestamp: ts, Nonce: nonce, Body: req.Body}
	if !ap.ver.verify(&f, sign) {
		return badSign
	}
	// A nonce, when sent, is remembered only once the signature holds, so strangers cannot
	// fill the store; it is required only where the route asks for replay protection. It is
	// kept until its timestamp leaves the window: after that the timestamp check refuses a
	// replay by itself.
	if nonce != "" && !*recorded {
		*recorded = true
		switch a.remember(appID, nonce, tsMs+a.skewMs, nowMs) {
		case nonceReplay:
			return replayedNonce
		case nonceFull:
			a.counters.Degraded.Inc()
			if !a.failOpen {
				return nonceStoreFull
			}
		}
	}
	if checkAllow && !ap.allow.allows(op) {
		return apiNotAllowed
	}
	return ok
}

// parseMillis reads a Unix-milliseconds timestamp: 1 to 16 ASCII digits, nothing else
// (no sign, no spaces), so it cannot overflow.
func parseMillis(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
