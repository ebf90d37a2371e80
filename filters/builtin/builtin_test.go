package builtin

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/accesslog"
)

const secret = "bench-secret-0123456789"

func env(log *slog.Logger) filters.Env {
	return filters.Env{
		Name:    "demo.*",
		Apps:    []config.App{{ID: "wallet", Secret: secret}},
		Logger:  log,
		Metrics: metrics.NewSet(),
		Now:     time.Now, // auth checks the timestamp against it; the rate limit never binds at 10^9/s
	}
}

// route is the filters of a route written in the first config format: names, and the
// options of ratelimit beside them (rl; nil: a limit that never binds).
func route(rl config.FilterOptions, names ...string) []config.FilterUse {
	if rl == nil {
		rl = config.FilterOptions{"rate": "1000000000/s", "burst": 1 << 20, "key": "device"}
	}
	r := config.Route{API: "demo.*", Filters: config.Filters(names...), RateLimit: rl}
	return r.FilterUses("routes[3]")
}

// nonceSeq keeps nonces unique: a nonce sent twice is a replay.
var nonceSeq atomic.Int64

func signedRequest(now time.Time, body []byte) *codec.Request {
	return signedRequestNonce(now, body, "n"+strconv.FormatInt(nonceSeq.Add(1), 10))
}

func signedRequestNonce(now time.Time, body []byte, nonce string) *codec.Request {
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	sig := mmtp.Sign([]byte(secret), &mmtp.SignFields{Operation: "demo.echo", AppID: "wallet", DeviceID: "dev-1", Timestamp: ts, Nonce: nonce, Body: body})
	return &codec.Request{Protocol: codec.MMTP, Operation: "demo.echo", StreamID: 1, Body: body, Header: codec.Header{
		{Key: "app-id", Value: "wallet"}, {Key: "device-id", Value: "dev-1"}, {Key: "timestamp", Value: ts},
		{Key: "nonce", Value: nonce}, {Key: "sign", Value: sig}}}
}

func TestBuiltins(t *testing.T) {
	r := NewRegistry()
	if got := strings.Join(r.Names(), ","); got != "accesslog,auth,ratelimit" {
		t.Fatalf("names %s", got)
	}
	now := time.Now()
	c, err := r.Build("routes[3]", route(nil, "accesslog", "auth", "ratelimit"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	resp := c.Handle(context.Background(), signedRequest(now, []byte("hi")), &filters.Exchange{Start: now}, func(context.Context, *codec.Request, *filters.Exchange) *codec.Response {
		calls++
		return &codec.Response{Status: 200}
	})
	if resp.Status != 200 || calls != 1 {
		t.Fatalf("status %d calls %d", resp.Status, calls)
	}
	e := env(nil)
	if _, err := r.Build("routes[3]", route(config.FilterOptions{"rate": "fast"}, "auth", "ratelimit"), e); err == nil || !strings.HasPrefix(err.Error(), `routes[3].ratelimit.rate: "fast"`) {
		t.Fatalf("bad rate: %v", err)
	}
	if _, err := r.Build("routes[3]", route(nil, "auth", "ratelimt"), e); err == nil || !strings.HasPrefix(err.Error(), `routes[3].filters[1]: unknown filter "ratelimt"`) {
		t.Fatalf("unknown filter: %v", err)
	}
}

// TestRefusedEarlyLeavesLaterFiltersAlone: auth refuses, so ratelimit's Receive does not
// run (the key's only token stays), the backend is not called, and accesslog, listed
// first, still logs the 401 in the send phase.
func TestRefusedEarlyLeavesLaterFiltersAlone(t *testing.T) {
	var logs strings.Builder
	e := env(slog.New(slog.NewJSONHandler(&logs, nil)))
	c, err := NewRegistry().Build("routes[3]", route(config.FilterOptions{"rate": "1/m", "burst": 1, "key": "device"}, "accesslog", "auth", "ratelimit"), e)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	next := func(context.Context, *codec.Request, *filters.Exchange) *codec.Response {
		calls++
		return &codec.Response{Status: 200}
	}
	now := time.Now()
	bad := signedRequest(now, []byte("hi"))
	bad.Body = []byte("tampered")
	x := &filters.Exchange{Listener: "mobile", Start: now}
	if resp := c.Handle(context.Background(), bad, x, next); resp.Status != 401 || x.RejectedBy != "auth" {
		t.Fatalf("tampered: %d by %q", resp.Status, x.RejectedBy)
	}
	if resp := c.Handle(context.Background(), signedRequest(now, []byte("hi")), &filters.Exchange{}, next); resp.Status != 200 {
		t.Fatalf("the token was spent by a refused request: %d", resp.Status)
	}
	if resp := c.Handle(context.Background(), signedRequest(now, []byte("hi")), &filters.Exchange{}, next); resp.Status != 429 {
		t.Fatalf("second valid request: %d", resp.Status)
	}
	if calls != 1 {
		t.Fatalf("backend called %d times", calls)
	}
	if n := strings.Count(logs.String(), `"msg":"access"`); n != 3 || !strings.Contains(logs.String(), `"rejected_by":"auth"`) {
		t.Fatalf("%d access lines:\n%s", n, logs.String())
	}
}

// benchChain measures what a chain adds to one request: receive phase, a trivial stand-in
// for router+upstream, send phase. Each iteration includes the gateway's one clock read
// (Exchange.Start), which the filters share.
func benchChain(b *testing.B, names []string, bodySize int, parallel bool) {
	now := time.Now()
	w := accesslog.NewWriter(io.Discard, 0, nil)
	defer w.Close()
	log := slog.New(slog.NewJSONHandler(w, nil))
	c, err := NewRegistry().Build("routes[3]", route(nil, names...), env(log))
	if err != nil {
		b.Fatal(err)
	}
	// One signed request, sent over and over: without a nonce, since a nonce may be used
	// once (signing a fresh one per iteration would measure the client, not the chain).
	req := signedRequestNonce(now, make([]byte, bodySize), "")
	ok := &codec.Response{Status: 200}
	next := func(context.Context, *codec.Request, *filters.Exchange) *codec.Response { return ok }
	ctx := context.Background()
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			x := &filters.Exchange{}
			for pb.Next() {
				*x = filters.Exchange{Start: time.Now()}
				if c.Handle(ctx, req, x, next).Status != 200 {
					b.Fatal("refused")
				}
			}
		})
		return
	}
	x := &filters.Exchange{}
	for b.Loop() {
		*x = filters.Exchange{Start: time.Now()}
		if c.Handle(ctx, req, x, next).Status != 200 {
			b.Fatal("refused")
		}
	}
}

func BenchmarkChainEmpty(b *testing.B)     { benchChain(b, nil, 64, false) }
func BenchmarkChainRatelimit(b *testing.B) { benchChain(b, []string{"ratelimit"}, 64, false) }
func BenchmarkChainAuth(b *testing.B)      { benchChain(b, []string{"auth"}, 64, false) }
func BenchmarkChainAuthRatelimit(b *testing.B) {
	benchChain(b, []string{"auth", "ratelimit"}, 64, false)
}
func BenchmarkChainAuthRatelimit4KiB(b *testing.B) {
	benchChain(b, []string{"auth", "ratelimit"}, 4096, false)
}
func BenchmarkChainAuthRatelimitParallel(b *testing.B) {
	benchChain(b, []string{"auth", "ratelimit"}, 64, true)
}
func BenchmarkChainAuthRatelimitAccesslog(b *testing.B) {
	benchChain(b, []string{"accesslog", "auth", "ratelimit"}, 64, false)
}
