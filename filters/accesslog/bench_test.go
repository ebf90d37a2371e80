package accesslog

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/filters"
)

func benchSend(b *testing.B, h slog.Handler) {
	env := filters.Env{Path: "routes[0]", AccessLogger: slog.New(h)}
	l, err := New(&env)
	if err != nil {
		b.Fatal(err)
	}
	req := &codec.Request{Operation: "demo.pay", StreamID: 9, Body: make([]byte, 64),
		Header: codec.Header{{Key: "app-id", Value: "wallet"}, {Key: "device-id", Value: "d1"}, {Key: "trace-id", Value: "t-1"}},
		Conn:   codec.ConnInfo{Listener: "mobile", ClientAddr: netip.MustParseAddrPort("10.0.0.7:5000")}}
	resp := &codec.Response{Status: 200, Body: make([]byte, 100)}
	x := &filters.Exchange{Route: "demo.*", Cluster: "mesh", DecidedBy: "split", UpstreamLatency: 7 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		x.Start = time.Now()
		l.Send(context.Background(), req, resp, x)
	}
}

func BenchmarkSendJSONDiscard(b *testing.B) { benchSend(b, slog.NewJSONHandler(io.Discard, nil)) }
func BenchmarkSendTextDiscard(b *testing.B) { benchSend(b, slog.NewTextHandler(io.Discard, nil)) }
func BenchmarkSendJSONWriter(b *testing.B) {
	w := NewWriter(io.Discard, 0, nil)
	defer w.Close()
	benchSend(b, slog.NewJSONHandler(w, nil))
}
