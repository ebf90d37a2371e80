package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// adminToken is long and unlike anything else in the output, so a search for it in logs,
// answers and metrics cannot match by accident.
const adminToken = "e2e-admin-token-7f3a9c2b51d84e60a1b2c3d4e5f60718"

// adminCall sends one request to the admin (or health) listener at addr and returns the
// status and body. hdr holds extra headers; "Host" sets the request's Host.
func adminCall(t *testing.T, addr, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Close = true // a fresh connection each call: a kept-alive one may be reset under load
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// runMgw runs the mgw binary to completion with env added, and returns its exit code and
// combined output.
func runMgw(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(mgwBin, args...)
	cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("mgw %v: %v", args, err)
	}
	return 0, string(out)
}

func tokenConfig(baddr string) string {
	return fmt.Sprintf(`
admin:
  listen: 127.0.0.1:0
  tokens:
    - {name: ops, env: MGW_ADMIN_TOKEN}
health:
  listen: 127.0.0.1:0
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: [%q], timeout: 5s}
  - {name: other, hosts: [%q], timeout: 5s}
routes:
  - {api: "demo.*", split: {demo: 100}, sticky: device}
`, baddr, baddr)
}

// TestAdminTokenGuardsChanges is the "done when": with a token configured, a route
// PUT without it is 401, with a foreign Host 421, from a foreign Origin 403, with it 200
// and audited under the token's name; the token shows up nowhere; refusals are counted.
func TestAdminTokenGuardsChanges(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, tokenConfig(baddr), "MGW_ADMIN_TOKEN="+adminToken)
	a := g.addrs["admin"]
	put := `{"split":{"demo":50,"other":50},"sticky":"none"}`
	json := map[string]string{"Content-Type": "application/json"}

	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, json); st != 401 {
		t.Errorf("PUT without a token: %d %s, want 401", st, body)
	}
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, bearer(adminToken+"x")); st != 401 {
		t.Errorf("PUT with a wrong token: %d %s, want 401", st, body)
	}
	foreign := bearer(adminToken)
	foreign["Host"] = "evil.example"
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, foreign); st != 421 && st != 403 {
		t.Errorf("PUT with Host evil.example: %d %s, want 421 or 403", st, body)
	}
	cross := bearer(adminToken)
	cross["Origin"] = "http://evil.example"
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, cross); st != 403 {
		t.Errorf("PUT with Origin evil.example: %d %s, want 403", st, body)
	}
	// The route is unchanged by all of the above.
	if st, body := adminCall(t, a, "GET", "/v1/routes/demo.*", "", bearer(adminToken)); st != 200 || !strings.Contains(body, `"demo": 100`) {
		t.Fatalf("route after refused PUTs: %d %s", st, body)
	}
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, bearer(adminToken)); st != 200 || !strings.Contains(body, `"other": 50`) {
		t.Fatalf("PUT with the token: %d %s, want 200 and the new split", st, body)
	}
	// The change is logged once, under the token's name, with the endpoint and the change.
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(g.output(), `msg="admin change"`) })
	var audit []string
	for _, l := range strings.Split(g.output(), "\n") {
		if strings.Contains(l, `msg="admin change"`) {
			audit = append(audit, l)
		}
	}
	if len(audit) != 1 || !strings.Contains(audit[0], "token=ops") || !strings.Contains(audit[0], "/v1/routes/demo.*") ||
		!strings.Contains(audit[0], `other`) {
		t.Errorf("audit lines = %q, want one with token=ops, the endpoint and the change", audit)
	}

	// Internals need the token too; health and metrics stay open.
	for _, p := range []string{"/v1/config", "/debug/pprof/", "/v1/routes", "/v1/clusters"} {
		if st, _ := adminCall(t, a, "GET", p, "", nil); st != 401 {
			t.Errorf("GET %s without a token: %d, want 401", p, st)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/v1/stats"} {
		if st, _ := adminCall(t, a, "GET", p, "", nil); st != 200 {
			t.Errorf("GET %s without a token: %d, want 200", p, st)
		}
	}

	// Refusals are counted by reason.
	_, metrics := adminCall(t, a, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`mgw_admin_refused_total{reason="no_token"} `, `mgw_admin_refused_total{reason="bad_token"} 1`,
		`mgw_admin_refused_total{reason="host"} 1`, `mgw_admin_refused_total{reason="origin"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The token is in no log line, no admin answer, no metric.
	var answers strings.Builder
	for _, p := range []string{"/v1/config", "/v1/stats", "/metrics", "/v1/routes", "/healthz"} {
		_, b := adminCall(t, a, "GET", p, "", bearer(adminToken))
		answers.WriteString(b)
	}
	_, b := adminCall(t, a, "PUT", "/v1/routes/demo.*", "{", bearer(adminToken))
	answers.WriteString(b)
	_, b = adminCall(t, a, "PUT", "/v1/routes/demo.*", put, bearer(adminToken[:20]))
	answers.WriteString(b)
	if !strings.Contains(answers.String(), `"tokens"`) {
		t.Errorf("/v1/config does not show admin.tokens (names and sources)")
	}
	for _, s := range []string{adminToken, adminToken[:20]} {
		if strings.Contains(answers.String(), s) {
			t.Errorf("an admin answer contains the token %q", s)
		}
		if strings.Contains(g.output(), s) {
			t.Errorf("the gateway's output contains the token %q", s)
		}
	}
}

// TestHealthListenerServesProbesOnly: /healthz, /readyz and /metrics answer on the health
// listener without a token; nothing else does, with or without one.
func TestHealthListenerServesProbesOnly(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, tokenConfig(baddr), "MGW_ADMIN_TOKEN="+adminToken)
	h := g.addrs["health"]
	if h == "" {
		t.Fatalf("no health address printed:\n%s", g.output())
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		st, body := adminCall(t, h, "GET", p, "", nil)
		if st != 200 {
			t.Errorf("health GET %s: %d %s", p, st, body)
		}
		if p == "/metrics" && !strings.Contains(body, "mgw_admin_refused_total") {
			t.Errorf("health /metrics lacks the gateway's series")
		}
	}
	for _, p := range []string{"/v1/config", "/v1/stats", "/v1/routes", "/v1/routes/demo.*", "/debug/pprof/", "/v1/switches", "/"} {
		if st, _ := adminCall(t, h, "GET", p, "", bearer(adminToken)); st != 404 {
			t.Errorf("health GET %s: %d, want 404", p, st)
		}
	}
	if st, body := adminCall(t, h, "POST", "/healthz", "", nil); st != 405 || !strings.HasPrefix(body, `{"error":`) {
		t.Errorf("health POST /healthz: %d %q, want 405 with a JSON error", st, body)
	}
	st, _ := adminCall(t, h, "PUT", "/v1/routes/demo.*", `{"split":{"other":100}}`, bearer(adminToken))
	if st/100 != 4 {
		t.Errorf("health PUT /v1/routes/demo.*: %d, want 4xx", st)
	}
	if _, body := adminCall(t, g.addrs["admin"], "GET", "/v1/routes/demo.*", "", bearer(adminToken)); !strings.Contains(body, `"demo": 100`) {
		t.Errorf("route changed through the health listener: %s", body)
	}
}

// TestAdminNoTokenLoopback is the default: no token, loopback admin. Changes from loopback
// work without a credential (make run on a laptop), but the DNS-rebinding request of the
// issue (foreign Host, foreign Origin, text/plain) is refused.
func TestAdminNoTokenLoopback(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, basicConfig(baddr, ""))
	a := g.addrs["admin"]
	out, err := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Host: evil.example",
		"-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain",
		"-d", `{"split":{"demo":100},"sticky":"none"}`, "http://"+a+"/v1/routes/demo.*")
	if err != nil {
		t.Fatal(err)
	}
	if out != "421" && out != "403" {
		t.Errorf("the issue's rebinding PUT answered %s, want 421 or 403", out)
	}
	// Same Host, but a page of another origin (a browser's cross-origin request).
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", `{"sticky":"none"}`,
		map[string]string{"Origin": "http://evil.example"}); st != 403 {
		t.Errorf("cross-origin PUT: %d %s, want 403", st, body)
	}
	if st, body := adminCall(t, a, "GET", "/v1/routes/demo.*", "", nil); st != 200 || !strings.Contains(body, `"sticky": "device"`) {
		t.Fatalf("route after refused PUTs: %d %s", st, body)
	}
	for _, host := range []string{a, "localhost", "localhost:" + a[strings.LastIndex(a, ":")+1:]} {
		st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", `{"sticky":"user"}`, map[string]string{"Host": host})
		if st != 200 {
			t.Errorf("loopback PUT with Host %q: %d %s, want 200", host, st, body)
		}
	}
	if st, _ := adminCall(t, a, "GET", "/v1/config", "", nil); st != 200 {
		t.Errorf("loopback GET /v1/config with no token configured: %d, want 200", st)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(g.output(), `msg="admin change"`) })
	if !regexp.MustCompile(`msg="admin change" .*auth=loopback`).MatchString(g.output()) {
		t.Errorf("no audit line for the loopback change:\n%s", g.output())
	}
}

// TestAdminErrorsAreJSON: the admin API is JSON in and out; a method a path does not take
// is 405 with Allow and a JSON error, an unknown path a JSON 404, as on /v1/routes.
func TestAdminErrorsAreJSON(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, basicConfig(baddr, ""))
	a := g.addrs["admin"]
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/push", "POST"}, {"GET", "/v1/upgrade", "POST"}, {"POST", "/v1/stats", "GET, HEAD"},
		{"PUT", "/v1/config", "GET, HEAD"}, {"POST", "/healthz", "GET, HEAD"}, {"GET", "/nonexistent", ""},
	} {
		req, _ := http.NewRequest(c.method, "http://"+a+c.path, nil)
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusMethodNotAllowed
		if c.allow == "" {
			want = http.StatusNotFound
		}
		if resp.StatusCode != want || resp.Header.Get("Allow") != c.allow ||
			resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(string(b), `{"error":`) {
			t.Errorf("%s %s: %d Allow %q %s %q; want %d Allow %q and a JSON error", c.method, c.path, resp.StatusCode,
				resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), b, want, c.allow)
		}
	}
	// None of them asked to change anything: no "admin change not applied" line.
	if strings.Contains(g.output(), "admin change not applied") {
		t.Errorf("a 404 or 405 was logged as a change not applied:\n%s", g.output())
	}
}

// TestConfigViewIsTheConfigInForce: GET /v1/config shows a route as changed live, and
// after a reload that moves a listener (which needs a restart) the address it still
// listens on; the reload's warning names the change.
func TestConfigViewIsTheConfigInForce(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, basicConfig(baddr, ""))
	a := g.addrs["admin"]
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", `{"sticky":"user"}`, nil); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	var view struct {
		Listeners []struct {
			Name, Listen string
			MaxConns     int `json:"max_conns"`
		}
		Routes []struct{ API, Sticky string }
		Log    struct{ Format string }
	}
	get := func() {
		t.Helper()
		st, body := adminCall(t, a, "GET", "/v1/config", "", nil)
		if err := json.Unmarshal([]byte(body), &view); st != 200 || err != nil {
			t.Fatalf("GET /v1/config: %d %v %s", st, err, body)
		}
	}
	get()
	if len(view.Routes) == 0 || view.Routes[0].API != "demo.*" || view.Routes[0].Sticky != "user" {
		t.Errorf("routes after the live change: %+v, want demo.* sticky user", view.Routes)
	}
	running := g.addrs["web"]
	path := filepath.Join(g.dir, "mgw.yaml")
	cfg, _ := os.ReadFile(path)
	moved := strings.Replace(string(cfg), "{name: web, listen: 127.0.0.1:0,", "{name: web, listen: 127.0.0.1:1, max_conns: 1,", 1)
	if moved == string(cfg) {
		t.Fatalf("test config has no web listener to move:\n%s", cfg)
	}
	// A listener option and the log format need a restart too: they were not applied and
	// not reported, while GET /v1/config showed them.
	moved += "log: {format: json}\n"
	os.WriteFile(path, []byte(moved), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(g.output(), "configuration reloaded") })
	for _, field := range []string{"listeners[1].listen", "listeners[1].max_conns", "log.format"} {
		if !strings.Contains(g.output(), field) {
			t.Errorf("the reload's warning does not name %s:\n%s", field, g.output())
		}
	}
	get()
	if view.Log.Format == "json" {
		t.Errorf("GET /v1/config shows log format json, which a restart would apply")
	}
	for _, l := range view.Listeners {
		if l.Name == "web" && l.Listen == "127.0.0.1:1" {
			t.Errorf("GET /v1/config shows web at %s, where it does not listen (still %s)", l.Listen, running)
		}
		if l.Name == "web" && l.MaxConns == 1 {
			t.Errorf("GET /v1/config shows web's max_conns 1, which a restart would apply")
		}
	}
}

// TestServeCheckRejectsOpenAdmin: a non-loopback admin address without a token is a config
// error naming the field; with a token it is accepted.
func TestServeCheckRejectsOpenAdmin(t *testing.T) {
	dir := t.TempDir()
	write := func(name, admin string) string {
		p := filepath.Join(dir, name)
		cfg := admin + `
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: ["127.0.0.1:1"]}
routes:
  - {api: "demo.*", split: {demo: 100}}
`
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	open := write("open.yaml", "admin: {listen: 0.0.0.0:19955}")
	code, out := runMgw(t, nil, "serve", "-check", "-c", open)
	if code == 0 || !strings.Contains(out, "admin.listen") || !strings.Contains(out, "admin.tokens") {
		t.Errorf("serve -check of a public admin without a token: exit %d\n%s", code, out)
	}
	guarded := write("guarded.yaml", "admin: {listen: 0.0.0.0:19955, tokens: [{name: ops, env: MGW_ADMIN_TOKEN}]}")
	if code, out := runMgw(t, []string{"MGW_ADMIN_TOKEN=" + adminToken}, "serve", "-check", "-c", guarded); code != 0 {
		t.Errorf("serve -check with a token: exit %d\n%s", code, out)
	}
	if code, out := runMgw(t, []string{"MGW_ADMIN_TOKEN="}, "serve", "-check", "-c", guarded); code == 0 ||
		!strings.Contains(out, "admin.tokens[0]") || !strings.Contains(out, "MGW_ADMIN_TOKEN") {
		t.Errorf("serve -check with the token's variable unset: exit %d\n%s", code, out)
	}
}

// TestRouteCommandSendsToken: `mgw route set` reads MGW_ADMIN_TOKEN.
func TestRouteCommandSendsToken(t *testing.T) {
	_, baddr := backend(t, "b")
	g := serve(t, tokenConfig(baddr), "MGW_ADMIN_TOKEN="+adminToken)
	args := []string{"route", "set", "--admin", g.addrs["admin"], "--api", "demo.*", "--split", "demo=10,other=90"}
	code, out := runMgw(t, []string{"MGW_ADMIN_TOKEN="}, args...)
	if code != 1 || !strings.Contains(out, "401") || !strings.Contains(out, "MGW_ADMIN_TOKEN") {
		t.Errorf("route set without a token: exit %d\n%s", code, out)
	}
	code, out = runMgw(t, []string{"MGW_ADMIN_TOKEN=" + adminToken}, args...)
	if code != 0 || !strings.Contains(out, "other=90") {
		t.Errorf("route set with the token: exit %d\n%s", code, out)
	}
	if strings.Contains(out, adminToken) {
		t.Errorf("mgw route printed the token")
	}
}

// TestAdminUnixSocket: admin on a unix socket is created 0600 and serves changes without
// a token (only the socket's owner can connect).
func TestAdminUnixSocket(t *testing.T) {
	_, baddr := backend(t, "b")
	sock := filepath.Join(t.TempDir(), "admin.sock")
	g := serve(t, fmt.Sprintf(`
admin: {listen: "unix:%s"}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: [%q], timeout: 5s}
routes:
  - {api: "demo.*", split: {demo: 100}, sticky: device}
`, sock, baddr))
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("admin socket: %v\n%s", err, g.output())
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode = %v, want a socket with 0600", fi.Mode())
	}
	out, err := curl(t, "--unix-socket", sock, "-X", "PUT", "-d", `{"sticky":"user"}`, "http://localhost/v1/routes/demo.*")
	if err != nil || !strings.Contains(out, `"sticky": "user"`) {
		t.Errorf("PUT over the unix socket: %v %s", err, out)
	}
	code, out2 := runMgw(t, nil, "route", "get", "--admin", "unix:"+sock, "--api", "demo.*")
	if code != 0 || !strings.Contains(out2, "sticky     user") {
		t.Errorf("mgw route get over the unix socket: exit %d\n%s", code, out2)
	}
	// A unix socket is not reachable from the network, so nothing listens on TCP for it.
	if _, err := net.DialTimeout("unix", sock, time.Second); err != nil {
		t.Errorf("dial the admin socket: %v", err)
	}
}

// TestAdminTokenRotationOnReload: tokens are re-read on SIGHUP, so a token in a file is
// rotated without a restart: the new one works at once, the old one stops working.
func TestAdminTokenRotationOnReload(t *testing.T) {
	_, baddr := backend(t, "b")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "admin-token")
	oldTok, newTok := adminToken+"-old", adminToken+"-new"
	if err := os.WriteFile(tokFile, []byte(oldTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(tokenConfig(baddr), "{name: ops, env: MGW_ADMIN_TOKEN}",
		fmt.Sprintf("{name: deploy-bot, file: %q}", tokFile), 1)
	g := serve(t, cfg)
	a := g.addrs["admin"]
	put := `{"sticky":"user"}`
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, bearer(oldTok)); st != 200 {
		t.Fatalf("PUT with the file's token: %d %s", st, body)
	}
	if err := os.WriteFile(tokFile, []byte(newTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The config file is the same; the reload re-reads the token file.
	if err := os.WriteFile(filepath.Join(g.dir, "mgw.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool {
		st, _ := adminCall(t, a, "GET", "/v1/routes/demo.*", "", bearer(newTok))
		return st == 200
	})
	if st, _ := adminCall(t, a, "PUT", "/v1/routes/demo.*", put, bearer(oldTok)); st != 401 {
		t.Errorf("PUT with the rotated-out token: %d, want 401", st)
	}
	if st, body := adminCall(t, a, "PUT", "/v1/routes/demo.*", `{"sticky":"device"}`, bearer(newTok)); st != 200 {
		t.Errorf("PUT with the new token: %d %s", st, body)
	}
	if !regexp.MustCompile(`msg="admin change" .*token=deploy-bot`).MatchString(g.output()) {
		t.Errorf("no audit line naming deploy-bot")
	}
	for _, s := range []string{oldTok, newTok} {
		if strings.Contains(g.output(), s) {
			t.Errorf("output contains a token")
		}
	}
}
