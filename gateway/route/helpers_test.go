package route

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// testConfig is a small fleet: two untagged clusters, two mesh clusters, one route per
// matching kind.
func testConfig() *config.Config {
	return &config.Config{
		Instance: config.Instance{Zone: "zone-a", Labels: map[string]string{"rack": "r1"}},
		// Mesh-only switches may name only configured apps, as in a file.
		Apps: []config.App{{ID: "wallet"}, {ID: "merchant"}},
		Clusters: []config.Cluster{
			{Name: "decentralized"},
			{Name: "mesh", Tags: []string{"mesh"}},
			{Name: "mesh2", Tags: []string{"mesh"}},
			{Name: "central", Tags: []string{"central"}},
		},
		Routes: []config.Route{
			{API: "alipay.trade.pay", Split: map[string]int{"decentralized": 95, "mesh": 5}, Sticky: "device", Fallback: []string{"mesh", "central"}},
			{API: "alipay.trade.*", Split: map[string]int{"central": 1}},
			{API: "alipay.*", Split: map[string]int{"decentralized": 1}},
			{API: "*", Split: map[string]int{"central": 1}},
			{Path: "/api", Split: map[string]int{"decentralized": 1}},
			{Path: "/api/v2/", Split: map[string]int{"mesh": 1}},
			{Path: "/", Split: map[string]int{"central": 1}},
		},
	}
}

func mustTable(t testing.TB, cfg *config.Config) *Table {
	t.Helper()
	tbl, err := NewTable(cfg)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}

func deviceReq(op, device string) *codec.Request {
	r := &codec.Request{Protocol: codec.MMTP, Operation: op}
	if device != "" {
		r.Header = codec.Header{{Key: "device-id", Value: device}}
	}
	return r
}

func reqWith(op string, hdr ...string) *codec.Request {
	r := &codec.Request{Protocol: codec.MMTP, Operation: op}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header = append(r.Header, codec.Field{Key: hdr[i], Value: hdr[i+1]})
	}
	return r
}

func clientReq(op, addr string) *codec.Request {
	r := &codec.Request{Protocol: codec.MMTP, Operation: op}
	r.Conn.ClientAddr = netip.MustParseAddrPort(addr)
	return r
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("device-%06d", i)
	}
	return out
}

// sideOf decides for each id on route api of tbl.
func sideOf(t testing.TB, tbl *Table, api string, devices []string) []string {
	t.Helper()
	rt := tbl.Route(api)
	if rt == nil {
		t.Fatalf("no route %q", api)
	}
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = tbl.Decide(rt, deviceReq(api, d)).Cluster
	}
	return out
}

func withSplit(cfg *config.Config, api string, split map[string]int) *config.Config {
	c := cloneConfig(cfg)
	for i := range c.Routes {
		if routeKey(&c.Routes[i]) == api {
			c.Routes[i].Split = split
		}
	}
	return c
}
