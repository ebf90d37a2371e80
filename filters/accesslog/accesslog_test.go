package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
)

func newLogger(t *testing.T, o *Options, buf *bytes.Buffer, now time.Time) *Logger {
	t.Helper()
	var opts config.FilterOptions
	if o != nil {
		var err error
		if opts, err = config.EncodeOptions(o); err != nil {
			t.Fatal(err)
		}
	}
	env := filters.Env{Path: "routes[0]", Options: opts,
		Logger: slog.New(slog.NewJSONHandler(buf, nil)), Now: func() time.Time { return now }}
	l, err := New(&env)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOneLinePerRequest(t *testing.T) {
	var buf bytes.Buffer
	start := time.Unix(1000, 0)
	l := newLogger(t, nil, &buf, start.Add(12*time.Millisecond))
	req := &codec.Request{Operation: "demo.pay", StreamID: 9, Body: []byte("SECRET-BODY"),
		Header: codec.Header{{Key: "app-id", Value: "wallet"}, {Key: "device-id", Value: "d1"}, {Key: "sign", Value: "SIGNATURE-HEX"}, {Key: "nonce", Value: "NONCE-1"}, {Key: "trace-id", Value: "t-1"}},
		Conn:   codec.ConnInfo{Listener: "mobile", ClientAddr: netip.MustParseAddrPort("10.0.0.7:5000")}}
	resp := &codec.Response{Status: 200, Body: []byte("RESPONSE-BODY")}
	x := &filters.Exchange{Route: "demo.*", Start: start, Cluster: "mesh", DecidedBy: "split", UpstreamLatency: 7 * time.Millisecond, BytesIn: 120}
	if l.Receive(context.Background(), req, x) != nil {
		t.Fatal("accesslog answered")
	}
	l.Send(context.Background(), req, resp, x)
	line := buf.String()
	for _, bad := range []string{"SECRET-BODY", "RESPONSE-BODY", "SIGNATURE-HEX", "NONCE-1"} {
		if strings.Contains(line, bad) {
			t.Errorf("line contains %s: %s", bad, line)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	want := map[string]any{"msg": "access", "listener": "mobile", "client": "10.0.0.7:5000", "app": "wallet", "device": "d1",
		"api": "demo.pay", "cluster": "mesh", "decided_by": "split", "status": 200.0, "upstream_us": 7000.0, "total_us": 12000.0,
		"bytes_in": 120.0, "bytes_out": 13.0, "trace_id": "t-1", "route": "demo.*", "stream": 9.0}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, ok := m["time"]; !ok {
		t.Error("no time")
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("%d lines", strings.Count(line, "\n"))
	}
}

func TestRejectedRequestLogged(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, nil, &buf, time.Now())
	resp := codec.ErrorResponse(429, codec.ErrRateLimited, "slow down")
	l.Send(context.Background(), &codec.Request{Operation: "a"}, resp, &filters.Exchange{RejectedBy: "ratelimit"})
	if !strings.Contains(buf.String(), `"rejected_by":"ratelimit"`) || !strings.Contains(buf.String(), `"error":"rate_limited"`) {
		t.Fatal(buf.String())
	}
}

func TestSamplingAndOff(t *testing.T) {
	var buf bytes.Buffer
	l := newLogger(t, &Options{Off: true}, &buf, time.Now())
	for i := 0; i < 100; i++ {
		l.Send(context.Background(), &codec.Request{}, &codec.Response{}, &filters.Exchange{})
	}
	if buf.Len() != 0 {
		t.Fatal("off logger wrote")
	}
	// sample: 0 is the fraction 0 (it logged every request, as unset does).
	zero := 0.0
	l = newLogger(t, &Options{Sample: &zero}, &buf, time.Now())
	for i := 0; i < 100; i++ {
		l.Send(context.Background(), &codec.Request{}, &codec.Response{}, &filters.Exchange{})
	}
	if buf.Len() != 0 {
		t.Fatalf("sample 0 logged %d lines", strings.Count(buf.String(), "\n"))
	}
	quarter := 0.25
	l = newLogger(t, &Options{Sample: &quarter}, &buf, time.Now())
	const n = 20000
	for i := 0; i < n; i++ {
		l.Send(context.Background(), &codec.Request{}, &codec.Response{}, &filters.Exchange{})
	}
	got := strings.Count(buf.String(), "\n")
	if got < n/4-600 || got > n/4+600 { // ±8 sigma
		t.Fatalf("sampled %d of %d at 0.25", got, n)
	}
	env := filters.Env{Path: "routes[1]", Options: config.FilterOptions{"sample": 1.5}, OptionsPath: "routes[1].accesslog"}
	if _, err := New(&env); err == nil || !strings.HasPrefix(err.Error(), "routes[1].accesslog.sample: 1.5") {
		t.Fatalf("bad sample: %v", err)
	}
}
