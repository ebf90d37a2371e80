package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/builtin"
	"github.com/mgw-project/mgw/gateway"
)

// This file is a program that embeds mgw, as an outsider would write it: only exported
// API, no change to gateway/. It adds a filter of its own, "tenant", that lets through
// the requests of the tenants it is given and tells the backend which tenant called.

// tenantOptions are the tenant filter's options: `{tenant: {allow: [acme]}}`.
type tenantOptions struct {
	Allow  []string `yaml:"allow"`
	Header string   `yaml:"header"` // the request header naming the tenant; default x-tenant
}

type tenantFilter struct {
	header string
	allow  map[string]bool
}

// newTenant is the factory: it decodes its options strictly, defaults and checks them.
func newTenant(env *filters.Env) (filters.Filter, error) {
	o := tenantOptions{Header: "x-tenant"}
	if err := env.DecodeOptions(&o); err != nil {
		return nil, err
	}
	if len(o.Allow) == 0 {
		return nil, env.OptionErrorf("allow", "missing: name at least one tenant")
	}
	f := &tenantFilter{header: strings.ToLower(o.Header), allow: map[string]bool{}}
	for _, t := range o.Allow {
		f.allow[t] = true
	}
	return f, nil
}

func (f *tenantFilter) Name() string { return "tenant" }

func (f *tenantFilter) Receive(_ context.Context, req *codec.Request, _ *filters.Exchange) *codec.Response {
	t := req.Header.Value(f.header)
	if !f.allow[t] {
		return codec.ErrorResponse(403, codec.ErrForbidden, "tenant not allowed here")
	}
	req.Header = append(req.Header, codec.Field{Key: "x-tenant-checked", Value: t})
	return nil
}

func (f *tenantFilter) Send(_ context.Context, _ *codec.Request, resp *codec.Response, _ *filters.Exchange) {
	resp.Header = append(resp.Header, codec.Field{Key: "x-tenant-filter", Value: "ran"})
}

// startEmbedded registers tenant beside the built-ins and runs a real gateway on yml;
// {{backend}} in yml stands for a backend that answers with the tenant the filter
// passed on.
func startEmbedded(t *testing.T, yml string) (*gateway.Gateway, error) {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tenant=%s", r.Header.Get("X-Tenant-Checked"))
	}))
	t.Cleanup(be.Close)
	reg := builtin.NewRegistry()
	if err := reg.Register("tenant", newTenant); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(yml, "{{backend}}", be.Listener.Addr().String())))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.New(cfg, gateway.Options{Filters: reg, Logger: quiet, AccessLog: io.Discard})
	if err != nil {
		return nil, err
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, nil
}

func post(t *testing.T, url, tenant string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader("x"))
	if tenant != "" {
		req.Header.Set("X-Tenant", tenant)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("X-Tenant-Filter")
}

// TestEmbeddedFilter: a filter registered by the embedding program, with options in the
// config (on a route, and on a listener), runs on the requests of a real gateway.
func TestEmbeddedFilter(t *testing.T) {
	g, err := startEmbedded(t, `
log: {level: error}
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
  - name: partners
    listen: "127.0.0.1:0"
    protocol: http1
    filters: [{tenant: {allow: [globex], header: x-partner}}]
clusters:
  - {name: b, hosts: ["{{backend}}"]}
routes:
  - {api: shop.*, split: {b: 100}, filters: [accesslog, {tenant: {allow: [acme, initech]}}]}
  - {api: open.*, split: {b: 100}}
`)
	if err != nil {
		t.Fatal(err)
	}
	web := "http://" + g.Addr("web").String()
	for _, c := range []struct {
		url, tenant string
		status      int
		body, ran   string
	}{
		{web + "/api/shop.buy", "acme", 200, "tenant=acme", "ran"},
		{web + "/api/shop.buy", "initech", 200, "tenant=initech", "ran"},
		{web + "/api/shop.buy", "globex", 403, "tenant not allowed here", "ran"},
		{web + "/api/shop.buy", "", 403, "tenant not allowed here", "ran"},
		{web + "/api/open.read", "", 200, "tenant=", ""}, // no tenant on this route
	} {
		st, body, ran := post(t, c.url, c.tenant)
		if st != c.status || body != c.body || ran != c.ran {
			t.Errorf("%s as %q: %d %q (filter header %q), want %d %q (%q)", c.url, c.tenant, st, body, ran, c.status, c.body, c.ran)
		}
	}
	// The listener's entry carries its own options: its header, its tenants.
	partners := "http://" + g.Addr("partners").String()
	req, _ := http.NewRequest("POST", partners+"/api/open.read", strings.NewReader("x"))
	req.Header.Set("X-Partner", "globex")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "tenant=globex" {
		t.Errorf("partners listener, globex: %d %q", resp.StatusCode, body)
	}
	if st, _, _ := post(t, partners+"/api/open.read", "acme"); st != 403 {
		t.Errorf("partners listener without x-partner: %d, want 403", st)
	}
}

// TestEmbeddedFilterOptionsChecked: the filter's own checks refuse a config at New, and
// name the option where it is written.
func TestEmbeddedFilterOptionsChecked(t *testing.T) {
	for _, c := range []struct{ filters, want string }{
		{`[{tenant: {alow: [acme]}}]`, `routes[0].filters[0].tenant.alow: unknown option "alow" (known: allow, header)`},
		{`[tenant]`, `routes[0].filters[0].tenant.allow: missing`},
		{`[{tenant: {allow: acme}}]`, `routes[0].filters[0].tenant.allow: cannot unmarshal`},
	} {
		_, err := startEmbedded(t, `
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: b, hosts: ["{{backend}}"]}
routes:
  - {api: shop.*, split: {b: 100}, filters: `+c.filters+`}
`)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("filters: %s: %v, want %q", c.filters, err, c.want)
		}
	}
}
