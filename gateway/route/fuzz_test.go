package route

import (
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAdminPut feeds arbitrary bodies to the admin PUTs. Whatever arrives, the answer is
// 200 or a 400 with an error, and the table in force stays usable: every route decides
// within its effective split, whose shares add up to 100.
func FuzzAdminPut(f *testing.F) {
	for _, s := range []string{
		`/v1/routes/alipay.trade.pay {"split":{"decentralized":90,"mesh":10}}`,
		`/v1/routes/alipay.trade.pay {"split":{"mesh":-1}}`,
		`/v1/routes/alipay.trade.pay {"split":{"mesh":0,"central":0}}`,
		`/v1/routes/alipay.trade.pay {"sticky":"none","fallback":["central"],"retry":true}`,
		`/v1/routes/%2Fapi {"split":{"mesh":1000000}}`,
		`/v1/switches {"mesh_only_apps":["wallet"],"zones":{"zone-a":{"mesh":30}},"labels":{"rack=r1":{"central":100}}}`,
		`/v1/switches/zones {"zone-a":{"mesh":50,"central":50}}`,
		`/v1/switches/labels {"rack":{"mesh":0}}`,
		`/v1/switches/mesh_only_apps ["wallet",""]`,
		`/v1/switches/zones {"zone-a":{"mesh":1e99}}`,
		`/v1/routes/* {"split":{"central":1}} {}`,
		`/v1/switches/zones {"zone-a":{"mesh":80,"central":80}}`,
		`/v1/switches/mesh_only_apps ["ghost"]`,
	} {
		path, body, _ := strings.Cut(s, " ")
		f.Add(path, body)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		if !strings.HasPrefix(path, "/v1/") || strings.ContainsAny(path, " \r\n#?") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return // not a request an HTTP server would hand to the handler
		}
		r, err := NewRouter(testConfig(), RouterOptions{Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		h := AdminHandler(r)
		req := httptest.NewRequest(http.MethodPut, "http://admin"+path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 301, 307, 308: // redirects: ServeMux canonicalising an unclean path
		case 400, 404, 405:
			if !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("%d without an error field: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		tbl := r.Load()
		for _, rt := range tbl.Routes() {
			for _, app := range []string{"", "wallet"} {
				e := tbl.Effective(rt, app)
				sum := 0.0
				for _, p := range e.Split {
					sum += p
				}
				if math.Abs(sum-100) > 1e-6 {
					t.Fatalf("route %s app %q: shares add up to %v", rt.Key, app, sum)
				}
				d := tbl.Decide(rt, reqWith("op", "device-id", "d1", "app-id", app))
				if e.Split[d.Cluster] <= 0 {
					t.Fatalf("route %s app %q: decided %q outside %v", rt.Key, app, d.Cluster, e.Split)
				}
			}
		}
	})
}
