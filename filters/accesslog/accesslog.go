// Package accesslog is the access-log filter: one structured slog line per request, at
// Info level, in the send phase (so it also logs requests another filter refused).
//
// Fields: listener, client, app, device, api, stream, trace_id, cluster, decided_by,
// status, error (the gateway's error code, if any), rejected_by, upstream_us, total_us,
// bytes_in, bytes_out. Never the body, never the signature, nonce or any other header.
// The time is the record's own.
//
// The lines go to the handler of Env.AccessLogger; put it over a Writer (this package) so
// that a slow log sink drops lines instead of blocking the pool workers.
package accesslog

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/filters"
)

// Name is the filter's registered name.
const Name = "accesslog"

// Logger is the accesslog filter of one route or listener. Safe for concurrent use.
type Logger struct {
	log    *slog.Logger
	sample float64 // fraction of requests logged; 1 logs all
	off    bool
	now    func() time.Time
}

// Options are the accesslog filter's options: `{accesslog: {sample: 0.1}}`.
type Options struct {
	// Sample is the fraction of requests logged, within 0..1; unset logs all, 0 none
	// (as docs/filters.md says: the fraction). Off silences a route too.
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	Off    bool     `yaml:"off" json:"off,omitempty"`
}

// Factory is the filters.Factory of "accesslog": options from env.Options (every
// request logged when unset), lines to env.AccessLogger.
func Factory(env *filters.Env) (filters.Filter, error) { return New(env) }

// New builds a Logger from env.Options. Errors name the option.
func New(env *filters.Env) (*Logger, error) {
	e := env.WithDefaults()
	var o Options
	if err := e.DecodeOptions(&o); err != nil {
		return nil, err
	}
	l := &Logger{log: e.AccessLogger, sample: 1, off: o.Off, now: e.Now}
	if s := o.Sample; s != nil {
		if !(*s >= 0 && *s <= 1) {
			return nil, e.OptionErrorf("sample", "%v is not a fraction from 0 to 1", *s)
		}
		l.sample = *s
		l.off = l.off || *s == 0
	}
	return l, nil
}

// Name implements filters.Filter.
func (l *Logger) Name() string { return Name }

// Receive implements filters.Filter; the line is written in the send phase.
func (l *Logger) Receive(context.Context, *codec.Request, *filters.Exchange) *codec.Response {
	return nil
}

// Send implements filters.Filter: it writes the request's line, if sampled.
func (l *Logger) Send(ctx context.Context, req *codec.Request, resp *codec.Response, x *filters.Exchange) {
	if l.off || (l.sample < 1 && rand.Float64() >= l.sample) || !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if x == nil {
		x = &filters.Exchange{}
	}
	in, out := x.BytesIn, x.BytesOut
	if in == 0 {
		in = int64(len(req.Body))
	}
	status, errCode := 0, ""
	if resp != nil {
		status, errCode = resp.Status, resp.Header.Value("error")
		if out == 0 {
			out = int64(len(resp.Body))
		}
	}
	var total time.Duration
	if start := x.Start; !start.IsZero() {
		total = l.now().Sub(start)
	} else if !req.Received.IsZero() {
		total = l.now().Sub(req.Received)
	}
	listener := x.Listener
	if listener == "" {
		listener = req.Conn.Listener
	}
	client := ""
	if req.Conn.ClientAddr.IsValid() {
		client = req.Conn.ClientAddr.String()
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "access",
		slog.String("listener", listener),
		slog.String("client", client),
		slog.String("app", req.App()),
		slog.String("device", req.Device()),
		slog.String("api", req.Operation),
		slog.Uint64("stream", uint64(req.StreamID)),
		slog.String("trace_id", req.Header.Value("trace-id")),
		slog.String("route", x.Route),
		slog.String("cluster", x.Cluster),
		slog.String("decided_by", x.DecidedBy),
		slog.Int("status", status),
		slog.String("error", errCode),
		slog.String("rejected_by", x.RejectedBy),
		// Integer microseconds: slog's JSON handler formats floats through encoding/json,
		// which costs more than the rest of the line.
		slog.Int64("upstream_us", x.UpstreamLatency.Microseconds()),
		slog.Int64("total_us", total.Microseconds()),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", out),
	)
}
