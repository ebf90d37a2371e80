package route

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func adminServer(t *testing.T) (*Router, *httptest.Server) {
	t.Helper()
	r, _ := newTestRouter(t, nil)
	srv := httptest.NewServer(AdminHandler(r))
	t.Cleanup(srv.Close)
	return r, srv
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content-type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func TestAdminRoutes(t *testing.T) {
	_, srv := adminServer(t)
	var list []RouteView
	do(t, srv, "GET", "/v1/routes", "", 200, &list)
	if len(list) != 7 || list[0].Route != payAPI || list[0].Effective.Split["mesh"] != 5 {
		t.Fatalf("list: %+v", list)
	}
	var v RouteView
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay", "", 200, &v)
	if v.Split["decentralized"] != 95 || v.Sticky != "device" || len(v.Fallback) != 2 {
		t.Fatalf("get: %+v", v)
	}
	// Wildcards and path keys, escaped.
	do(t, srv, "GET", "/v1/routes/alipay.*", "", 200, &v)
	if v.Route != "alipay.*" {
		t.Fatalf("alipay.*: %+v", v)
	}
	do(t, srv, "GET", "/v1/routes/*", "", 200, &v)
	if v.Route != "*" {
		t.Fatalf("*: %+v", v)
	}
	do(t, srv, "GET", "/v1/routes/"+url.PathEscape("/api/v2/"), "", 200, &v)
	if v.Route != "/api/v2/" || v.Kind != "path" {
		t.Fatalf("path: %+v", v)
	}
	// An operation type finds the route that would take it.
	do(t, srv, "GET", "/v1/routes/alipay.user.get", "", 200, &v)
	if v.Route != "alipay.*" {
		t.Fatalf("matched: %+v", v)
	}

	do(t, srv, "PUT", "/v1/routes/alipay.trade.pay", `{"split":{"decentralized":90,"mesh":10},"retry":true}`, 200, &v)
	if v.Split["mesh"] != 10 || v.Effective.Split["mesh"] != 10 || !v.Retry {
		t.Fatalf("put: %+v", v)
	}
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay", "", 200, &v)
	if v.Split["mesh"] != 10 || v.Sticky != "device" {
		t.Fatalf("get after put: %+v", v)
	}
	do(t, srv, "PUT", "/v1/routes/"+url.PathEscape("/api"), `{"split":{"mesh":1}}`, 200, &v)
	if v.Route != "/api" || v.Split["mesh"] != 1 {
		t.Fatalf("put path: %+v", v)
	}
	// The root path route, whose escaped key is one %2F.
	do(t, srv, "PUT", "/v1/routes/%2F", `{"split":{"mesh":1}}`, 200, &v)
	if v.Route != "/" || v.Split["mesh"] != 1 {
		t.Fatalf("put /: %+v", v)
	}
	do(t, srv, "GET", "/v1/routes/%2F", "", 200, &v)
	if v.Route != "/" || v.Kind != "path" || v.Split["mesh"] != 1 {
		t.Fatalf("get /: %+v", v)
	}
	var eff map[string]any
	do(t, srv, "GET", "/v1/routes/%2F/effective", "", 200, &eff)

	// HEAD goes where GET does.
	do(t, srv, "HEAD", "/v1/routes", "", 200, nil)
	do(t, srv, "HEAD", "/v1/routes/alipay.trade.pay", "", 200, nil)
	do(t, srv, "HEAD", "/v1/switches", "", 200, nil)

	var e map[string]string
	for _, c := range []struct {
		method, path, body, want string
		status                   int
	}{
		{"PUT", "/v1/routes/alipay.trade.pay", `{"split":{"mesh":-1,"central":1}}`, "split.mesh: weight -1 is negative", 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"split":{"nope":1}}`, `split.nope: unknown cluster`, 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"split":{"mesh":0}}`, "split: all weights are zero", 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"splt":{"mesh":1}}`, `unknown field "splt"`, 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"split":{"mesh":"x"}}`, "split: a string where a number belongs", 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `[1]`, "body: an array where an object belongs", 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"sticky":"ip"}`, `sticky: "ip"`, 400},
		{"PUT", "/v1/routes/alipay.trade.pay", `{"fallback":["mesh","x"]}`, `fallback[1]: unknown cluster "x"`, 400},
		{"PUT", "/v1/routes/alipay.user.get", `{"split":{"mesh":1}}`, "no such route", 404},
		{"GET", "/v1/nothing", "", "no such admin path", 404},
		{"DELETE", "/v1/routes/alipay.trade.pay", "", "method DELETE", 405},
	} {
		do(t, srv, c.method, c.path, c.body, c.status, &e)
		if !strings.Contains(e["error"], c.want) || strings.Contains(e["error"], "body: body") {
			t.Errorf("%s %s %s: error %q, want %q", c.method, c.path, c.body, e["error"], c.want)
		}
	}
}

func TestAdminEffectiveAndExplain(t *testing.T) {
	r, srv := adminServer(t)
	var eff Effective
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay/effective", "", 200, &eff)
	if eff.DecidedBy != BySplit || eff.Split["mesh"] != 5 {
		t.Fatalf("effective: %+v", eff)
	}
	var sc SwitchChange
	do(t, srv, "PUT", "/v1/switches/mesh_only_apps", `["wallet"]`, 200, &sc)
	if len(sc.Switches.MeshOnlyApps) != 1 || len(sc.Effective) != 7 {
		t.Fatalf("mesh-only put: %+v", sc)
	}
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay/effective?app=wallet", "", 200, &eff)
	if eff.DecidedBy != ByMeshOnlyApp || eff.Switch != "wallet" || eff.Split["mesh"] != 100 {
		t.Fatalf("effective wallet: %+v", eff)
	}
	do(t, srv, "PUT", "/v1/switches/zones", `{"zone-a":{"mesh":20}}`, 200, &sc)
	if sc.Effective[0].DecidedBy != ByZone || sc.Effective[0].Split["mesh"] != 20 || sc.Switches.Instance.Zone != "zone-a" {
		t.Fatalf("zone put: %+v", sc.Effective[0])
	}
	var e map[string]string
	do(t, srv, "PUT", "/v1/switches/zones", `{"zone-a":{"mesh":120}}`, 400, &e)
	if !strings.Contains(e["error"], "switches.zones.zone-a.mesh: percent 120") {
		t.Fatalf("zone error: %v", e)
	}
	do(t, srv, "PUT", "/v1/switches/labels", `{"rack=r1":{"central":100}}`, 200, &sc)
	do(t, srv, "GET", "/v1/switches/colors", "", 404, &e)
	var labels map[string]map[string]int
	do(t, srv, "GET", "/v1/switches/labels", "", 200, &labels)
	if labels["rack=r1"]["central"] != 100 {
		t.Fatalf("labels: %v", labels)
	}
	var sv SwitchesView
	do(t, srv, "GET", "/v1/switches", "", 200, &sv)
	if sv.Zones["zone-a"]["mesh"] != 20 || sv.Instance.Labels["rack"] != "r1" {
		t.Fatalf("switches: %+v", sv)
	}
	do(t, srv, "PUT", "/v1/switches", `{"mesh_only_apps":[],"zones":{},"labels":{}}`, 200, &sc)
	if sc.Effective[0].DecidedBy != BySplit {
		t.Fatalf("cleared: %+v", sc.Effective[0])
	}

	// Explain agrees with Decide for devices, users, headers and clients.
	tbl := r.Load()
	rt := tbl.Route(payAPI)
	var ex Explanation
	for _, dev := range ids(40) {
		do(t, srv, "GET", "/v1/routes/alipay.trade.pay/explain?device="+dev, "", 200, &ex)
		if want := tbl.Decide(rt, deviceReq(payAPI, dev)); ex.Cluster != want.Cluster || ex.DecidedBy != BySplit || ex.StickyKey != dev {
			t.Fatalf("explain %s: %+v, decide %s", dev, ex, want.Cluster)
		}
		if len(ex.Hash) != 2 || ex.Reason == "" {
			t.Fatalf("explain lacks hash or reason: %+v", ex)
		}
	}
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay/explain?client=10.0.0.9:1234", "", 200, &ex)
	if ex.StickySource != StickyClient || ex.StickyKey != "10.0.0.9" {
		t.Fatalf("explain client: %+v", ex)
	}
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay/explain?client=nonsense", "", 400, &e)
	if !strings.HasPrefix(e["error"], "client:") {
		t.Fatalf("bad client: %v", e)
	}
	do(t, srv, "GET", "/v1/routes/unknown.op/explain?device=d", "", 200, &ex)
	if ex.Route != "*" || ex.Operation != "unknown.op" {
		t.Fatalf("explain by operation: %+v", ex)
	}
	do(t, srv, "GET", "/v1/routes/"+url.PathEscape("/api/v2/users")+"/explain", "", 200, &ex)
	if ex.Route != "/api/v2/" || ex.Cluster != "mesh" {
		t.Fatalf("explain by path: %+v", ex)
	}
}

func TestAdminExplainForce(t *testing.T) {
	cfg := testConfig()
	cfg.Routes[0].Force = []forceT{{Header: &headerT{Name: "x-canary", Value: "1"}, Cluster: "central"}}
	r, err := NewRouter(cfg, RouterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(AdminHandler(r))
	defer srv.Close()
	var ex Explanation
	do(t, srv, "GET", "/v1/routes/alipay.trade.pay/explain?device=d&header.X-Canary=1", "", 200, &ex)
	if ex.Cluster != "central" || ex.DecidedBy != ByForce || !strings.Contains(ex.Force, "header x-canary=1") {
		t.Fatalf("explain force: %+v", ex)
	}
}

// The gateway mounts the handler under its own ServeMux; escaped keys must survive both.
func TestAdminMountedUnderMux(t *testing.T) {
	r, _ := newTestRouter(t, nil)
	rh := AdminHandler(r)
	outer := http.NewServeMux()
	outer.Handle("/v1/routes", rh)
	outer.Handle("/v1/routes/", rh)
	outer.Handle("/v1/switches/", rh)
	srv := httptest.NewServer(outer)
	defer srv.Close()
	var v RouteView
	do(t, srv, "GET", "/v1/routes/"+url.PathEscape("/api/v2/"), "", 200, &v)
	if v.Route != "/api/v2/" {
		t.Fatalf("path key through two muxes: %+v", v)
	}
	do(t, srv, "PUT", "/v1/routes/*", `{"split":{"mesh":1}}`, 200, &v)
	if v.Route != "*" || v.Split["mesh"] != 1 {
		t.Fatalf("* through two muxes: %+v", v)
	}
	var eff Effective
	do(t, srv, "GET", "/v1/routes/alipay.trade.x/effective", "", 200, &eff)
	if eff.API != "alipay.trade.*" {
		t.Fatalf("effective by operation: %+v", eff)
	}
}
