package route

import (
	"github.com/mgw-project/mgw/config"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

func TestMatchPrecedence(t *testing.T) {
	tbl := mustTable(t, testConfig())
	cases := map[string]string{
		"alipay.trade.pay":    "alipay.trade.pay", // exact beats every prefix
		"alipay.trade.refund": "alipay.trade.*",   // longest prefix
		"alipay.trade.a.b":    "alipay.trade.*",
		"alipay.trade":        "alipay.*", // `alipay.trade.*` needs the dot
		"alipay.user.get":     "alipay.*",
		"alipay":              "*",
		"other.op":            "*",
		"":                    "*",
	}
	for op, want := range cases {
		if got := tbl.Match(op); got == nil || got.Key != want {
			t.Errorf("Match(%q) = %v, want %q", op, got, want)
		}
	}
}

func TestMatchNoStar(t *testing.T) {
	cfg := testConfig()
	cfg.Routes = cfg.Routes[:1]
	tbl := mustTable(t, cfg)
	if got := tbl.Match("nope"); got != nil {
		t.Fatalf("Match(nope) = %q, want nil", got.Key)
	}
	if got := tbl.MatchPath("/x"); got != nil {
		t.Fatalf("MatchPath(/x) = %q, want nil", got.Key)
	}
}

func TestMatchPathSegments(t *testing.T) {
	tbl := mustTable(t, testConfig())
	cases := map[string]string{
		"/api":          "/api",
		"/api/":         "/api",
		"/api/x":        "/api",
		"/api?q=1":      "/api",
		"/apix":         "/",
		"/api/v2":       "/api", // `/api/v2/` ends in '/', so it needs it
		"/api/v2/":      "/api/v2/",
		"/api/v2/users": "/api/v2/",
		"/":             "/",
		"/anything":     "/",
	}
	for p, want := range cases {
		if got := tbl.MatchPath(p); got == nil || got.Key != want {
			t.Errorf("MatchPath(%q) = %v, want %q", p, got, want)
		}
	}
}

func TestMatchRequest(t *testing.T) {
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes[:1], cfg.Routes[4:]...) // no `*`: unknown ops fall to paths
	tbl := mustTable(t, cfg)
	cases := []struct {
		req  codec.Request
		want string
	}{
		{codec.Request{Protocol: codec.MMTP, Operation: "alipay.trade.pay"}, "alipay.trade.pay"},
		{codec.Request{Protocol: codec.HTTP1, Operation: "alipay.trade.pay", Target: "/api/alipay.trade.pay"}, "alipay.trade.pay"},
		{codec.Request{Protocol: codec.HTTP1, Target: "/api/v2/x"}, "/api/v2/"},
		{codec.Request{Protocol: codec.HTTP1, Target: "http://h:80/api/q"}, "/api"},
		{codec.Request{Protocol: codec.HTTP1, Operation: "unknown.op", Target: "/api/unknown.op"}, "/api"},
		{codec.Request{Protocol: codec.MMTP, Operation: "unknown.op"}, ""},
	}
	for _, c := range cases {
		got := tbl.MatchRequest(&c.req)
		key := ""
		if got != nil {
			key = got.Key
		}
		if key != c.want {
			t.Errorf("MatchRequest(%+v) = %q, want %q", c.req, key, c.want)
		}
	}
}

func TestValidationNamesField(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(c *cfgT)
		field string
	}{
		{"negative", func(c *cfgT) { c.Routes[0].Split = map[string]int{"mesh": -1, "central": 5} }, "routes[0].split.mesh: weight -1 is negative"},
		{"unknown", func(c *cfgT) { c.Routes[1].Split = map[string]int{"nope": 1} }, `routes[1].split.nope: unknown cluster "nope"`},
		{"allzero", func(c *cfgT) { c.Routes[2].Split = map[string]int{"mesh": 0, "central": 0} }, "routes[2].split: all weights are zero"},
		{"empty", func(c *cfgT) { c.Routes[2].Split = nil }, "routes[2].split: empty"},
		{"sticky", func(c *cfgT) { c.Routes[0].Sticky = "ip" }, `routes[0].sticky: "ip"`},
		{"fallback", func(c *cfgT) { c.Routes[0].Fallback = []string{"mesh", "gone"} }, `routes[0].fallback[1]: unknown cluster "gone"`},
		{"pattern", func(c *cfgT) { c.Routes[1].API = "a.*.b" }, `routes[1].api: "a.*.b"`},
		{"dup", func(c *cfgT) { c.Routes[1].API = "alipay.trade.pay" }, `routes[1].api: "alipay.trade.pay" duplicates routes[0]`},
		{"both", func(c *cfgT) { c.Routes[1].Path = "/x" }, "routes[1]: set only one of api"},
		{"path", func(c *cfgT) { c.Routes[4].Path = "api" }, "routes[4].path"},
		{"forcecluster", func(c *cfgT) { c.Routes[0].Force = []forceT{{Devices: []string{"d"}, Cluster: "x"}} }, `routes[0].force[0].cluster: unknown cluster "x"`},
		{"forceempty", func(c *cfgT) { c.Routes[0].Force = []forceT{{Cluster: "mesh"}} }, "routes[0].force[0]: matches nothing"},
		{"zonepct", func(c *cfgT) { c.Switches.Zones = map[string]map[string]int{"z": {"mesh": 101}} }, "switches.zones.z.mesh: percent 101"},
		{"zonetag", func(c *cfgT) { c.Switches.Zones = map[string]map[string]int{"z": {"blue": 1}} }, `switches.zones.z.blue: no cluster has tag "blue"`},
		{"labelsum", func(c *cfgT) { c.Switches.Labels = map[string]map[string]int{"k": {"mesh": 60, "central": 50}} }, "switches.labels.k: percents add up to 110"},
		{"meshless", func(c *cfgT) {
			c.Switches.MeshOnlyApps = []string{"wallet"}
			c.Clusters[1].Tags, c.Clusters[2].Tags = nil, nil
		}, `switches.mesh_only_apps: no cluster has tag "mesh"`},
		{"dupcluster", func(c *cfgT) { c.Clusters[1].Name = "decentralized" }, `clusters[1].name: "decentralized" is already the name of clusters[0]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			c.edit(cfg)
			_, err := NewTable(cfg)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v, want it to contain %q", err, c.field)
			}
		})
	}
}

type (
	cfgT    = config.Config
	forceT  = config.Force
	headerT = config.HeaderMatch
)
