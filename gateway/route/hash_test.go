package route

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
)

// The numbers of docs/routing.md's worked example; if this fails, the documented hash and
// the code disagree, and every external tool predicting sides is wrong.
func TestHashWorkedExample(t *testing.T) {
	for _, c := range []struct {
		cluster, prefix string
		u, negLn        float64
	}{
		{"decentralized", "0017f48ca28f2df5", 0.000365528425899597, 7.914166509},
		{"mesh", "87fd4b2acfd52496", 0.531208703949080, 0.632600296},
	} {
		sum := sha256.Sum256([]byte("alipay.trade.pay\x00device-1\x00" + c.cluster))
		if got := hex.EncodeToString(sum[:8]); got != c.prefix {
			t.Errorf("%s: sha256 prefix %s, want %s", c.cluster, got, c.prefix)
		}
		u := unitHash("alipay.trade.pay", "device-1", c.cluster)
		if math.Abs(u-c.u) > 1e-15 || math.Abs(-math.Log(u)-c.negLn) > 1e-9 {
			t.Errorf("%s: u=%v -ln(u)=%v, want %v and %v", c.cluster, u, -math.Log(u), c.u, c.negLn)
		}
	}
	cfg := testConfig()
	tbl := mustTable(t, cfg)
	if got := sideOf(t, tbl, payAPI, []string{"device-1"})[0]; got != "decentralized" {
		t.Errorf("95/5: device-1 on %s, want decentralized", got)
	}
	ex := tbl.Explain(tbl.Route(payAPI), deviceReq(payAPI, "device-1"))
	if math.Abs(ex.Hash["decentralized"].Score-12.0038) > 1e-4 || math.Abs(ex.Hash["mesh"].Score-7.9039) > 1e-4 {
		t.Errorf("95/5 scores %+v", ex.Hash)
	}
	tbl = mustTable(t, withSplit(cfg, payAPI, map[string]int{"decentralized": 90, "mesh": 10}))
	if got := sideOf(t, tbl, payAPI, []string{"device-1"})[0]; got != "mesh" {
		t.Errorf("90/10: device-1 on %s, want mesh", got)
	}
	ex = tbl.Explain(tbl.Route(payAPI), deviceReq(payAPI, "device-1"))
	if math.Abs(ex.Hash["decentralized"].Score-11.3720) > 1e-4 || math.Abs(ex.Hash["mesh"].Score-15.8078) > 1e-4 {
		t.Errorf("90/10 scores %+v", ex.Hash)
	}
}

// unitHash must stay strictly inside (0,1) so ln(u) is finite and negative.
func TestUnitHashRange(t *testing.T) {
	for _, k := range ids(5000) {
		if u := unitHash("r", k, "c"); !(u > 0 && u < 1) {
			t.Fatalf("u(%s) = %v", k, u)
		}
	}
	long := string(make([]byte, 1000)) // longer than the stack buffer
	if u := unitHash("r", long, "c"); !(u > 0 && u < 1) {
		t.Fatalf("long key: %v", u)
	}
}

func BenchmarkDecide(b *testing.B) {
	cfg := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 90, "mesh": 5, "central": 5})
	tbl := mustTable(b, cfg)
	rt := tbl.Route(payAPI)
	req := deviceReq(payAPI, "device-123456")
	b.ReportAllocs()
	for b.Loop() {
		tbl.Decide(rt, req)
	}
}

func BenchmarkRouterDecideParallel(b *testing.B) {
	r, err := NewRouter(testConfig(), RouterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	req := deviceReq(payAPI, "device-123456")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Decide(req)
		}
	})
}
