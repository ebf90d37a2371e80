package upstream

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// BenchmarkCall measures one API call through the cluster against a local echo backend
// (the backend's own cost is included): go test -bench Call -benchmem ./gateway/upstream
func BenchmarkCall(b *testing.B) {
	addr := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, r.Body)
	}))
	c := newCluster(b, config.Cluster{}, nil, addr)
	req := &codec.Request{
		Protocol: codec.MMTP, Operation: "demo.echo",
		Header: codec.Header{
			{Key: "operation-type", Value: "demo.echo"}, {Key: "app-id", Value: "wallet"},
			{Key: "device-id", Value: "dev-1"}, {Key: "timestamp", Value: "1700000000000"},
			{Key: "sign", Value: "0123456789abcdef"}, {Key: "trace-id", Value: "t-1"},
		},
		Body: []byte(`{"amount":100,"currency":"CNY"}`),
		Conn: codec.ConnInfo{ClientAddr: client},
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Call(context.Background(), req, 0)
			if err != nil || resp.Status != 200 {
				b.Fatalf("Call: %v", err)
			}
		}
	})
}

// BenchmarkForward measures one small proxied GET, response streamed and closed.
func BenchmarkForward(b *testing.B) {
	addr := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ok":true}`)
	}))
	c := newCluster(b, config.Cluster{}, nil, addr)
	req := &ProxyRequest{
		Method: "GET", Target: "/v1/items?page=2", Host: "api.example.com",
		Header:     codec.Header{{Key: "host", Value: "api.example.com"}, {Key: "accept", Value: "application/json"}},
		ClientAddr: client,
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Forward(context.Background(), req)
			if err != nil {
				b.Fatalf("Forward: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
