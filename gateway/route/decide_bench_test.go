package route

import (
	"net/netip"
	"testing"
)

func BenchmarkDecideOneCluster(b *testing.B) {
	tbl := mustTable(b, withSplit(testConfig(), payAPI, map[string]int{"decentralized": 100}))
	rt := tbl.Route(payAPI)
	req := deviceReq(payAPI, "")
	req.Conn.ClientAddr = netip.MustParseAddrPort("192.0.2.7:5000")
	b.ReportAllocs()
	for b.Loop() {
		tbl.Decide(rt, req)
	}
}
