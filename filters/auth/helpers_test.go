package auth

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
)

const (
	walletSecret = "wallet-s3cret-XYZZY-do-not-leak"
	shopSecret   = "shop-secret-PLUGH-0123456789"
)

// clock is a settable fake clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Millis() string      { return strconv.FormatInt(c.Now().UnixMilli(), 10) }
func (c *clock) MillisAt(d time.Duration) string {
	return strconv.FormatInt(c.Now().Add(d).UnixMilli(), 10)
}

// fixture is an auth filter on a route with two apps (wallet from an env variable, shop
// from a file, shop limited to demo.*), a fake clock, metrics and a debug log buffer.
type fixture struct {
	t     testing.TB
	clk   *clock
	set   *metrics.Set
	logs  *bytes.Buffer
	env   filters.Env
	a     *Authenticator
	chain *filters.Chain
	calls int // backend calls
}

func newFixture(t testing.TB, opts *Options) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: newClock(), set: metrics.NewSet(), logs: &bytes.Buffer{}}
	dir := t.TempDir()
	path := dir + "/shop.key"
	if err := writeFile(path, shopSecret+"\n"); err != nil {
		t.Fatal(err)
	}
	f.env = filters.Env{
		Name:    "demo.*",
		Options: encodeOptions(t, opts),
		Apps: []config.App{
			{ID: "wallet", SecretEnv: "WALLET_SECRET"},
			{ID: "shop", SecretFile: path, APIs: []string{"demo.*"}},
			{ID: "keyless"},
		},
		Getenv: func(k string) string {
			if k == "WALLET_SECRET" {
				return walletSecret
			}
			return ""
		},
		Logger:  slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: f.set,
		Now:     f.clk.Now,
	}
	reg := filters.NewRegistry()
	if err := reg.Register(Name, Factory); err != nil {
		t.Fatal(err)
	}
	c, err := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: f.env.Options}}, f.env)
	if err != nil {
		t.Fatal(err)
	}
	f.chain = c
	f.a = c.Filter(Name).(*Authenticator)
	return f
}

// do runs req through the chain with a counting stand-in for router+upstream.
func (f *fixture) do(req *codec.Request) *codec.Response {
	return f.chain.Handle(context.Background(), req, &filters.Exchange{}, func(context.Context, *codec.Request, *filters.Exchange) *codec.Response {
		f.calls++
		return &codec.Response{Status: 200}
	})
}

// signed builds a signed request; mutate runs before signing when sign is true.
type reqSpec struct {
	proto     codec.Protocol
	op        string
	app       string
	device    string
	ts        string
	nonce     string
	body      string
	secret    string
	omitIDs   bool // leave app-id and device-id out of the headers (after HELLO)
	conn      codec.ConnInfo
	signOp    string // defaults to op
	signBody  string // defaults to body
	overwrite string // sign value to send instead of the computed one
}

func build(s reqSpec) *codec.Request {
	signOp := s.signOp
	if signOp == "" {
		signOp = s.op
	}
	signBody := s.signBody
	if signBody == "" {
		signBody = s.body
	}
	sig := mmtp.Sign([]byte(s.secret), &mmtp.SignFields{Operation: signOp, AppID: s.app, DeviceID: s.device, Timestamp: s.ts, Nonce: s.nonce, Body: []byte(signBody)})
	if s.overwrite != "" {
		sig = s.overwrite
	}
	req := &codec.Request{Protocol: s.proto, Operation: s.op, Body: []byte(s.body), Conn: s.conn}
	if req.Conn.ClientAddr == (netip.AddrPort{}) {
		req.Conn.ClientAddr = netip.MustParseAddrPort("10.1.2.3:5555")
	}
	if s.proto == codec.HTTP1 {
		// The HTTP codec lowercases field names: App-Id arrives as app-id.
		req.Method, req.Target, req.Minor = "POST", "/api/"+s.op, 1
	} else {
		req.StreamID = 7
	}
	if !s.omitIDs {
		req.Header = append(req.Header, codec.Field{Key: "app-id", Value: s.app}, codec.Field{Key: "device-id", Value: s.device})
	}
	req.Header = append(req.Header, codec.Field{Key: "timestamp", Value: s.ts}, codec.Field{Key: "sign", Value: sig})
	if s.nonce != "" {
		req.Header = append(req.Header, codec.Field{Key: "nonce", Value: s.nonce})
	}
	return req
}

// nonceSeq makes every good request's nonce unique: a nonce sent twice is a replay.
var nonceSeq atomic.Int64

// good returns a valid spec for wallet calling demo.echo now, with a fresh nonce.
func (f *fixture) good(proto codec.Protocol) reqSpec {
	return reqSpec{proto: proto, op: "demo.echo", app: "wallet", device: "dev-1", ts: f.clk.Millis(),
		nonce: "n-" + strconv.FormatInt(nonceSeq.Add(1), 10), body: `{"amount":1}`, secret: walletSecret}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// encodeOptions writes opts as a config holds them; nil stays nil (no options written).
func encodeOptions(t testing.TB, opts *Options) config.FilterOptions {
	t.Helper()
	if opts == nil {
		return nil
	}
	o, err := config.EncodeOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
