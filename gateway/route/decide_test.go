package route

import (
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/mgw-project/mgw/config"
)

const payAPI = "alipay.trade.pay"

func count(sides []string, cluster string) int {
	n := 0
	for _, s := range sides {
		if s == cluster {
			n++
		}
	}
	return n
}

// within3Sigma checks a binomial count against n*p.
func within3Sigma(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(got)-mean) > 3*sigma {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (3σ)", what, got, n, mean, 3*sigma)
	}
}

func TestSplitAccuracyAndStickiness(t *testing.T) {
	tbl := mustTable(t, testConfig())
	devs := ids(20000)
	sides := sideOf(t, tbl, payAPI, devs)
	within3Sigma(t, "mesh at 5%", count(sides, "mesh"), len(devs), 0.05)
	if n := count(sides, "mesh") + count(sides, "decentralized"); n != len(devs) {
		t.Fatalf("%d decisions went outside the split", len(devs)-n)
	}
	// The same device gets the same side from the same table and from a rebuilt one.
	again := sideOf(t, mustTable(t, testConfig()), payAPI, devs)
	for i := range devs {
		if sides[i] != again[i] {
			t.Fatalf("device %s moved from %s to %s with no change", devs[i], sides[i], again[i])
		}
	}
	rt := tbl.Route(payAPI)
	for i := 0; i < 100; i++ {
		if c := tbl.Decide(rt, deviceReq(payAPI, devs[7])).Cluster; c != sides[7] {
			t.Fatalf("repeat %d: %s, want %s", i, c, sides[7])
		}
	}
}

func TestRaisingOnlyMovesIntoNewSide(t *testing.T) {
	devs := ids(20000)
	cfg := testConfig()
	before := sideOf(t, mustTable(t, cfg), payAPI, devs)
	after := sideOf(t, mustTable(t, withSplit(cfg, payAPI, map[string]int{"decentralized": 90, "mesh": 10})), payAPI, devs)
	moved := 0
	for i := range devs {
		if before[i] == "mesh" && after[i] != "mesh" {
			t.Fatalf("device %s left mesh when mesh went 5%%→10%%", devs[i])
		}
		if before[i] != after[i] {
			moved++
		}
	}
	within3Sigma(t, "mesh at 10%", count(after, "mesh"), len(devs), 0.10)
	within3Sigma(t, "moved 5%→10%", moved, len(devs), 0.05)
}

func TestThreeClusterMonotonicity(t *testing.T) {
	devs := ids(10000)
	cfg := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 60, "mesh": 30, "central": 10})
	base := sideOf(t, mustTable(t, cfg), payAPI, devs)
	within3Sigma(t, "central at 10%", count(base, "central"), len(devs), 0.10)
	within3Sigma(t, "mesh at 30%", count(base, "mesh"), len(devs), 0.30)

	// Raise central: only moves into central, from both other sides.
	up := sideOf(t, mustTable(t, withSplit(cfg, payAPI, map[string]int{"decentralized": 60, "mesh": 30, "central": 40})), payAPI, devs)
	from := map[string]int{}
	for i := range devs {
		if base[i] != up[i] {
			if up[i] != "central" {
				t.Fatalf("device %s moved %s→%s when only central was raised", devs[i], base[i], up[i])
			}
			from[base[i]]++
		}
	}
	if from["decentralized"] == 0 || from["mesh"] == 0 {
		t.Fatalf("raise took only from %v; rendezvous should take from both in proportion", from)
	}
	// Lower mesh: only moves out of mesh.
	down := sideOf(t, mustTable(t, withSplit(cfg, payAPI, map[string]int{"decentralized": 60, "mesh": 10, "central": 10})), payAPI, devs)
	for i := range devs {
		if base[i] != down[i] && base[i] != "mesh" {
			t.Fatalf("device %s moved %s→%s when only mesh was lowered", devs[i], base[i], down[i])
		}
	}
	// Scaling every weight changes nothing.
	scaled := sideOf(t, mustTable(t, withSplit(cfg, payAPI, map[string]int{"decentralized": 600, "mesh": 300, "central": 100})), payAPI, devs)
	if !slices.Equal(base, scaled) {
		t.Fatalf("scaling all weights by 10 moved devices")
	}
}

func TestZeroWeightNeverChosen(t *testing.T) {
	tbl := mustTable(t, withSplit(testConfig(), payAPI, map[string]int{"decentralized": 100, "mesh": 0}))
	if n := count(sideOf(t, tbl, payAPI, ids(2000)), "mesh"); n != 0 {
		t.Fatalf("%d devices on a 0%% cluster", n)
	}
}

func TestStickyKeyFallbacks(t *testing.T) {
	cfg := testConfig()
	cfg.Routes[0].Split = map[string]int{"decentralized": 50, "mesh": 50}
	tbl := mustTable(t, cfg)
	rt := tbl.Route(payAPI)
	// No device id: the client address decides (port ignored), like a device named after it.
	a := tbl.Decide(rt, clientReq(payAPI, "10.1.2.3:5000")).Cluster
	b := tbl.Decide(rt, clientReq(payAPI, "10.1.2.3:6000")).Cluster
	c := tbl.Decide(rt, clientReq(payAPI, "[::ffff:10.1.2.3]:7000")).Cluster
	want := tbl.Decide(rt, deviceReq(payAPI, "10.1.2.3")).Cluster
	if a != want || b != want || c != want {
		t.Fatalf("client fallback: %s %s %s, want %s", a, b, c, want)
	}
	ex := tbl.Explain(rt, clientReq(payAPI, "10.1.2.3:5000"))
	if ex.StickySource != StickyClient || ex.StickyKey != "10.1.2.3" {
		t.Fatalf("explain: source %q key %q", ex.StickySource, ex.StickyKey)
	}
	// No key at all: random, from the injected source.
	rs := &seqRand{}
	tbl2, err := newTable(cfg, rs.next, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < 1000; i++ {
		seen[tbl2.Decide(tbl2.Route(payAPI), deviceReq(payAPI, "")).Cluster]++
	}
	if seen["mesh"] == 0 || seen["decentralized"] == 0 || rs.n != 1000 {
		t.Fatalf("random fallback: %v after %d draws", seen, rs.n)
	}
}

// seqRand is a deterministic random source: evenly spread values.
type seqRand struct{ n uint64 }

func (s *seqRand) next() uint64 {
	s.n++
	return s.n * 0x9E3779B97F4A7C15
}

func TestStickyNoneIsRandom(t *testing.T) {
	cfg := testConfig()
	cfg.Routes[0].Sticky = StickyNone
	cfg.Routes[0].Split = map[string]int{"decentralized": 75, "mesh": 25}
	rs := &seqRand{}
	tbl, err := newTable(cfg, rs.next, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.Route(payAPI)
	n := 0
	for i := 0; i < 20000; i++ {
		if tbl.Decide(rt, deviceReq(payAPI, "same-device")).Cluster == "mesh" {
			n++
		}
	}
	within3Sigma(t, "random mesh at 25%", n, 20000, 0.25)
}

func TestUserAndAppSticky(t *testing.T) {
	cfg := testConfig()
	cfg.Routes[0].Split = map[string]int{"decentralized": 50, "mesh": 50}
	cfg.Routes[0].Sticky = StickyUser
	tbl := mustTable(t, cfg)
	rt := tbl.Route(payAPI)
	want := tbl.Decide(rt, reqWith(payAPI, "user-id", "u1")).Cluster
	for _, d := range ids(50) {
		if got := tbl.Decide(rt, reqWith(payAPI, "user-id", "u1", "device-id", d)).Cluster; got != want {
			t.Fatalf("user sticky: device %s moved user u1 to %s, want %s", d, got, want)
		}
	}
	cfg.Routes[0].Sticky = StickyApp
	tbl = mustTable(t, cfg)
	rt = tbl.Route(payAPI)
	want = tbl.Decide(rt, reqWith(payAPI, "app-id", "wallet")).Cluster
	for _, d := range ids(50) {
		if got := tbl.Decide(rt, reqWith(payAPI, "app-id", "wallet", "device-id", d)).Cluster; got != want {
			t.Fatalf("app sticky: got %s, want %s", got, want)
		}
	}
}

func TestFallbackOrderAndNext(t *testing.T) {
	tbl := mustTable(t, testConfig())
	rt := tbl.Route(payAPI)
	var d Decision
	for _, dev := range ids(1000) {
		if d = tbl.Decide(rt, deviceReq(payAPI, dev)); d.Cluster == "decentralized" {
			break
		}
	}
	if !slices.Equal(d.Fallback, []string{"mesh", "central"}) {
		t.Fatalf("fallback %v", d.Fallback)
	}
	d2 := d
	if c, ok := d2.Next(true); ok {
		t.Fatalf("Next(sent) without retry gave %s", c)
	}
	var got []string
	for c, ok := d.Next(false); ok; c, ok = d.Next(false) {
		got = append(got, c)
	}
	if !slices.Equal(got, []string{"mesh", "central"}) {
		t.Fatalf("Next walked %v", got)
	}
	// A device on mesh falls back to central only.
	for _, dev := range ids(1000) {
		if d = tbl.Decide(rt, deviceReq(payAPI, dev)); d.Cluster == "mesh" {
			break
		}
	}
	if !slices.Equal(d.Fallback, []string{"central"}) {
		t.Fatalf("mesh fallback %v", d.Fallback)
	}
	cfg := testConfig()
	cfg.Routes[0].Retry = true
	tbl = mustTable(t, cfg)
	d = tbl.Decide(tbl.Route(payAPI), deviceReq(payAPI, "x"))
	if _, ok := d.Next(true); !ok || !d.Retry {
		t.Fatalf("Next(sent) with retry refused")
	}
}

func switchConfig() *config.Config {
	cfg := testConfig()
	cfg.Instance = config.Instance{Zone: "zone-b", Labels: map[string]string{"canary": "true"}}
	cfg.Switches = config.Switches{
		MeshOnlyApps: []string{"wallet"},
		Zones:        map[string]map[string]int{"zone-b": {"mesh": 0}},
		Labels:       map[string]map[string]int{"canary": {"mesh": 100}},
	}
	return cfg
}

func TestSwitchPrecedence(t *testing.T) {
	devs := ids(500)
	check := func(name string, cfg *config.Config, app, wantBy string, allowed ...string) {
		t.Helper()
		tbl := mustTable(t, cfg)
		rt := tbl.Route(payAPI)
		for _, dev := range devs {
			d := tbl.Decide(rt, reqWith(payAPI, "device-id", dev, "app-id", app))
			if d.DecidedBy != wantBy || !slices.Contains(allowed, d.Cluster) {
				t.Fatalf("%s: device %s → %s by %s, want one of %v by %s", name, dev, d.Cluster, d.DecidedBy, allowed, wantBy)
			}
		}
		if e := tbl.Effective(rt, app); e.DecidedBy != wantBy {
			t.Fatalf("%s: Effective decided by %s, want %s", name, e.DecidedBy, wantBy)
		}
	}
	cfg := switchConfig()
	check("mesh-only app beats zone", cfg, "wallet", ByMeshOnlyApp, "mesh")
	check("zone beats label", cfg, "other", ByZone, "decentralized")

	cfg.Instance.Zone = "zone-a" // no zone switch here
	check("label when no zone switch", cfg, "other", ByLabel, "mesh")

	cfg.Switches.Labels = map[string]map[string]int{"canary=false": {"mesh": 100}}
	check("label value must match", cfg, "other", BySplit, "mesh", "decentralized")

	cfg.Switches.Labels = map[string]map[string]int{"canary=true": {"mesh": 0}, "canary": {"mesh": 100}}
	check("key=value beats key", cfg, "other", ByLabel, "decentralized")
}

func TestSwitchShares(t *testing.T) {
	cfg := switchConfig()
	cfg.Switches.Zones = map[string]map[string]int{"zone-b": {"mesh": 50}}
	tbl := mustTable(t, cfg)
	e := tbl.Effective(tbl.Route(payAPI), "")
	if e.DecidedBy != ByZone || e.Switch != "zone-b" || math.Abs(e.Split["mesh"]-50) > 1e-9 || math.Abs(e.Split["decentralized"]-50) > 1e-9 {
		t.Fatalf("zone mesh:50 on 95/5: %+v", e)
	}
	within3Sigma(t, "zone mesh 50%", count(sideOf(t, tbl, payAPI, ids(10000)), "mesh"), 10000, 0.5)

	// A route without mesh clusters takes every mesh-tagged cluster, equally.
	e = tbl.Effective(tbl.Route("alipay.*"), "")
	want := map[string]float64{"decentralized": 50, "mesh": 25, "mesh2": 25}
	for c, p := range want {
		if math.Abs(e.Split[c]-p) > 1e-9 {
			t.Fatalf("alipay.* under mesh:50: %v, want %v", e.Split, want)
		}
	}
	// Mesh-only on a route with no mesh cluster: every mesh cluster, fallback only mesh ones.
	e = tbl.Effective(tbl.Route(payAPI), "wallet")
	if e.Split["mesh"] != 100 || len(e.Split) != 2 || !slices.Equal(e.Fallback, []string{"mesh"}) {
		t.Fatalf("wallet on pay: %+v", e)
	}
	e = tbl.Effective(tbl.Route("*"), "wallet")
	if e.Split["mesh"] != 50 || e.Split["mesh2"] != 50 || len(e.Fallback) != 0 {
		t.Fatalf("wallet on *: %+v", e)
	}
	// A zero-weight mesh cluster listed in the split is still the switch's target.
	cfg.Routes[0].Split = map[string]int{"decentralized": 100, "mesh": 0}
	cfg.Switches.Zones = map[string]map[string]int{"zone-b": {"mesh": 10}}
	tbl = mustTable(t, cfg)
	if e := tbl.Effective(tbl.Route(payAPI), ""); e.Split["mesh"] != 10 || e.Split["mesh2"] != 0 {
		t.Fatalf("mesh:10 over mesh:0: %+v", e)
	}
}

func TestSwitchNotApplicableFallsThrough(t *testing.T) {
	cfg := switchConfig()
	// mesh:100 on a route whose split is only mesh... applies; mesh:0 on a mesh-only route
	// leaves nothing, so the label switch (next level) decides.
	cfg.Routes[0].Split = map[string]int{"mesh": 1}
	cfg.Switches.Labels = map[string]map[string]int{"canary": {"central": 100}}
	tbl := mustTable(t, cfg)
	e := tbl.Effective(tbl.Route(payAPI), "")
	if e.DecidedBy != ByLabel || e.Split["central"] != 100 {
		t.Fatalf("zone mesh:0 on mesh-only route should fall through to label: %+v", e)
	}
}

func TestForce(t *testing.T) {
	cfg := testConfig()
	cfg.Routes[0].Split = map[string]int{"decentralized": 100, "mesh": 0}
	cfg.Routes[0].Force = []config.Force{
		{Devices: []string{"tester-phone"}, Cluster: "mesh"},
		{Users: []string{"qa-user"}, Cluster: "mesh"},
		{Header: &config.HeaderMatch{Name: "X-Canary", Value: "1"}, Cluster: "central"},
		{Devices: []string{"banned"}, Cluster: "decentralized", Never: true},
	}
	cfg.Switches.MeshOnlyApps = []string{"wallet"}
	tbl := mustTable(t, cfg)
	rt := tbl.Route(payAPI)
	cases := []struct {
		name     string
		hdr      []string
		want, by string
	}{
		{"device at 0%", []string{"device-id", "tester-phone"}, "mesh", ByForce},
		{"user", []string{"device-id", "d1", "user-id", "qa-user"}, "mesh", ByForce},
		{"header", []string{"device-id", "d1", "x-canary", "1"}, "central", ByForce},
		{"header value differs", []string{"device-id", "d1", "x-canary", "2"}, "decentralized", BySplit},
		{"force beats mesh-only", []string{"device-id", "d1", "app-id", "wallet", "x-canary", "1"}, "central", ByForce},
		{"nobody", []string{"device-id", "d1"}, "decentralized", BySplit},
		// never: decentralized is the only positive share, so the fallback list decides.
		{"never", []string{"device-id", "banned"}, "mesh", ByForce},
	}
	for _, c := range cases {
		d := tbl.Decide(rt, reqWith(payAPI, c.hdr...))
		if d.Cluster != c.want || d.DecidedBy != c.by {
			t.Errorf("%s: %s by %s, want %s by %s", c.name, d.Cluster, d.DecidedBy, c.want, c.by)
		}
		if slices.Contains(d.Fallback, d.Cluster) {
			t.Errorf("%s: fallback %v holds the chosen cluster", c.name, d.Fallback)
		}
	}
	d := tbl.Decide(rt, reqWith(payAPI, "device-id", "banned"))
	if slices.Contains(d.Fallback, "decentralized") || !slices.Equal(d.Fallback, []string{"central"}) {
		t.Fatalf("never: fallback %v", d.Fallback)
	}
}

func TestForceNeverKeepsOthersSticky(t *testing.T) {
	cfg := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 40, "mesh": 30, "central": 30})
	devs := ids(3000)
	cfg.Routes[0].Force = []config.Force{{Devices: devs, Cluster: "central", Never: true}}
	free := testConfig()
	free.Routes[0].Split = cfg.Routes[0].Split
	before := sideOf(t, mustTable(t, free), payAPI, devs)
	after := sideOf(t, mustTable(t, cfg), payAPI, devs)
	for i := range devs {
		if after[i] == "central" {
			t.Fatalf("device %s on its never cluster", devs[i])
		}
		if before[i] != "central" && before[i] != after[i] {
			t.Fatalf("device %s moved %s→%s though it was not on the never cluster", devs[i], before[i], after[i])
		}
	}
}

// TestOneEligibleClusterSkipsTheHash: when only one cluster may win (one positive share,
// or the others at 0 or excluded by a force never), Decide returns it without hashing,
// and the explained decision (which always hashes) agrees for every key.
func TestOneEligibleClusterSkipsTheHash(t *testing.T) {
	single := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 100})
	zero := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 0, "mesh": 100})
	never := withSplit(testConfig(), payAPI, map[string]int{"decentralized": 50, "mesh": 50})
	never.Routes[0].Force = []config.Force{{Devices: []string{"dev-1"}, Cluster: "mesh", Never: true}}
	for _, c := range []struct {
		name, device, want string
		cfg                *config.Config
	}{
		{"one cluster", "dev-1", "decentralized", single},
		{"the other at 0%", "dev-1", "mesh", zero},
		{"no device: by address", "", "decentralized", single},
		{"the other excluded by never", "dev-1", "decentralized", never},
	} {
		tbl := mustTable(t, c.cfg)
		rt := tbl.Route(payAPI)
		req := deviceReq(payAPI, c.device)
		req.Conn.ClientAddr = netip.MustParseAddrPort("192.0.2.7:5000")
		if w, ok := rt.base.w.only(""); c.name == "one cluster" && (!ok || w != "decentralized") {
			t.Errorf("%s: only() = %q %v", c.name, w, ok)
		}
		got := tbl.Decide(rt, req)
		var ex Explanation
		explained := tbl.decide(rt, req, &ex)
		if got.Cluster != c.want || explained.Cluster != c.want {
			t.Errorf("%s: Decide %q, explained %q, want %q", c.name, got.Cluster, explained.Cluster, c.want)
		}
		if !slices.Equal(got.Fallback, explained.Fallback) {
			t.Errorf("%s: fallback %v, explained %v", c.name, got.Fallback, explained.Fallback)
		}
	}
	if _, ok := (weights{names: []string{"a", "b"}, pct: []float64{50, 50}}).only(""); ok {
		t.Error("two positive shares: only() claims one")
	}
}
