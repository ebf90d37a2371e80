package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mgw-project/mgw/internal/testbin"
)

// notMgw lists series the dashboard and rules may name that mgw does not export, each
// with what creates it. Keep it small: everything else must be in mgw's /metrics.
var notMgw = map[string]string{
	"up": "Prometheus itself, one per scrape target (alerts.yaml MgwDown)",
}

// metricsEnv is the environment metricsConfig needs.
var metricsEnv = []string{"KIT_WALLET_SECRET=" + strings.Repeat("s3cr3t", 6)}

// metricsConfig: a gateway with both listener kinds, an auth-filtered route, a real
// backend cluster with health checks, and a Go memory limit (as in the Deployment), so
// that the series the dashboard and rules read exist.
func metricsConfig(backend string) string {
	return fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
health: {listen: 127.0.0.1:0}
log: {format: json}
apps:
  - {id: wallet, secret_env: KIT_WALLET_SECRET}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: backend, hosts: [%q], health_check: {path: /healthz, interval: 1s}}
routes:
  - {api: "pay.*", split: {backend: 100}, filters: [auth]}
  - {api: "*", split: {backend: 100}}
`, backend)
}

// startObservedGateway runs a gateway on metricsConfig and sends what makes the lazily
// created series appear: answers of several statuses, a request of over a second, one
// refused by the auth filter, a malformed HTTP request, an MMTP call.
func startObservedGateway(t *testing.T) *gateway {
	t.Helper()
	g := serve(t, metricsConfig(startBackend(t)), append(metricsEnv, "GOMEMLIMIT=1GiB")...)
	web := "http://" + g.addrs["web"]
	for body, want := range map[string]int{"hi": 200} {
		if code, got := post(t, web+"/api/demo.echo", body); code != want {
			t.Fatalf("demo.echo: %d %q", code, got)
		}
	}
	if code, _ := post(t, web+"/api/demo.status", "503"); code != 503 {
		t.Fatalf("demo.status 503: got %d", code)
	}
	if code, _ := post(t, web+"/api/demo.sleep", "1100"); code != 200 {
		t.Fatalf("demo.sleep 1100: got %d", code)
	}
	if code, body := post(t, web+"/api/pay.demo.echo", "unsigned"); code != 401 {
		t.Fatalf("an unsigned request to the auth route: %d %q, want 401", code, body)
	}
	c, err := net.DialTimeout("tcp", g.addrs["web"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "NOT HTTP AT ALL\r\n\r\n")
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.Contains(string(buf[:n]), " 400 ") {
		t.Fatalf("a malformed request: %q, want a 400", buf[:n])
	}
	out, err := exec.Command(mgwBin, "call", "-addr", g.addrs["mobile"], "demo.echo", "hi").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hi") {
		t.Fatalf("mgw call over MMTP: %v %s", err, out)
	}
	return g
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("grafana/mgw.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/mgw.json: %v", err)
	}
	return d
}

// dashboardExprs returns each panel's expressions by title, and the variables' queries.
func dashboardExprs(t *testing.T) (map[string][]string, []string) {
	d := loadDashboard(t)
	panels := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			panels[p.Title] = append(panels[p.Title], tg.Expr)
		}
	}
	var vars []string
	for _, v := range d.Templating.List {
		switch q := v.Query.(type) {
		case map[string]any:
			vars = append(vars, fmt.Sprint(q["query"]))
		case string:
			if v.Name != "datasource" {
				vars = append(vars, q)
			}
		}
	}
	return panels, vars
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatalf("prometheus/alerts.yaml: %v", err)
	}
	return rf
}

var (
	quotedRE   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	matchersRE = regexp.MustCompile(`\{[^{}]*\}`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	rangeRE    = regexp.MustCompile(`\[[^\]]*\]`)
	varRE      = regexp.MustCompile(`\$\{?\w+\}?`)
	identRE    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	numberRE   = regexp.MustCompile(`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`)
)

var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"inf": true, "nan": true, "atmodifier": true}

// metricNames returns the series names a PromQL expression reads: identifiers left once
// strings, label matchers, groupings, ranges, Grafana variables and numbers are taken out,
// that are not function calls or keywords.
func metricNames(expr string) []string {
	s := quotedRE.ReplaceAllString(expr, `""`)
	s = matchersRE.ReplaceAllString(s, " ")
	s = groupingRE.ReplaceAllString(s, " ")
	s = rangeRE.ReplaceAllString(s, " ")
	s = varRE.ReplaceAllString(s, " ")
	s = numberRE.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range identRE.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promqlWords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesExtraction(t *testing.T) {
	got := metricNames(`sum by (api) (rate(mgw_a_bucket{vmrange=~"[0-9.]+e[+]x", i=~"$instance"}[$__rate_interval])) / on(api) group_left sum(mgw_b) > 0.8 * mgw_c and max_over_time(mgw_d[5m]) < 1e15 unless mgw_e2`)
	want := []string{"mgw_a_bucket", "mgw_b", "mgw_c", "mgw_d", "mgw_e2"}
	if !slices.Equal(got, want) {
		t.Fatalf("metricNames = %v, want %v", got, want)
	}
}

var seriesRE = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]`)

// TestDashboardAndAlertMetricsExist: every series the dashboard and the alert rules
// read is in a running gateway's /metrics, and every rule carries runbook text.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	g := startObservedGateway(t)
	_, body := get(t, "http://"+g.addrs["health"]+"/metrics")
	exported := map[string]bool{}
	for _, m := range seriesRE.FindAllStringSubmatch(body, -1) {
		exported[m[1]] = true
	}
	check := func(where string, exprs []string) int {
		n := 0
		for _, e := range exprs {
			for _, name := range metricNames(e) {
				n++
				if !exported[name] && notMgw[name] == "" {
					t.Errorf("%s reads %s, which the gateway's /metrics does not have (expr: %s)", where, name, e)
				}
			}
		}
		return n
	}
	panels, vars := dashboardExprs(t)
	if len(panels) < 12 {
		t.Errorf("the dashboard has %d panels", len(panels))
	}
	seen := 0
	for title, exprs := range panels {
		if c := check("panel "+strconv.Quote(title), exprs); c == 0 {
			t.Errorf("panel %q reads no series", title)
		} else {
			seen += c
		}
	}
	for _, v := range vars {
		// label_values(metric, label): only the metric is a series.
		if m := regexp.MustCompile(`label_values\((\w+)`).FindStringSubmatch(v); m != nil {
			check("variable "+v, []string{m[1]})
		}
	}
	rules := loadRules(t)
	nrules := 0
	for _, gr := range rules.Groups {
		for _, r := range gr.Rules {
			nrules++
			if c := check("alert "+r.Alert, []string{r.Expr}); c == 0 {
				t.Errorf("alert %s reads no series", r.Alert)
			}
			if len(r.Annotations["runbook"]) < 80 || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: want a summary and runbook text in its annotations, got %v", r.Alert, r.Annotations)
			}
		}
	}
	if nrules < 8 {
		t.Errorf("%d alert rules", nrules)
	}
	t.Logf("%d panels (%d series references), %d rules, %d series names exported", len(panels), seen, nrules, len(exported))
}

// TestAlertRulesPromtool: `promtool check rules` accepts the rule file.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := testbin.Need(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
}

// TestDashboardHasDataInPrometheus: a real Prometheus scrapes a gateway that serves
// traffic, with the alert rules loaded; every dashboard query returns data and every
// rule evaluates without error.
func TestDashboardHasDataInPrometheus(t *testing.T) {
	prom := testbin.Need(t, "prometheus", "prometheus")
	g := startObservedGateway(t)
	// Traffic throughout, on new connections, so that rates and closes have data.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if resp, err := c.Post("http://"+g.addrs["web"]+"/api/demo.echo", "text/plain", strings.NewReader("tick")); err == nil {
				resp.Body.Close()
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	dir := t.TempDir()
	rules, err := filepath.Abs("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [%q]\nscrape_configs:\n  - job_name: mgw\n    static_configs: [{targets: [%q]}]\n",
		rules, g.addrs["health"])
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "prometheus", nil, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0")
	api := "http://" + listenAddrOf(t, p) + "/api/v1/"

	panels, _ := dashboardExprs(t)
	pending := map[string]string{} // expr -> panel
	for title, exprs := range panels {
		for _, e := range exprs {
			q := strings.NewReplacer("$__rate_interval", "10s", "$instance", ".*").Replace(e)
			pending[q] = title
		}
	}
	var last map[string]string
	for deadline := time.Now().Add(60 * time.Second); len(pending) > 0 && time.Now().Before(deadline); time.Sleep(time.Second) {
		last = map[string]string{}
		for q := range pending {
			n, err := promQuery(api, q)
			switch {
			case err != nil:
				last[q] = err.Error()
			case n == 0:
				last[q] = "no data"
			default:
				delete(pending, q)
			}
		}
	}
	for q, title := range pending {
		t.Errorf("panel %q: %s: %s", title, q, last[q])
	}

	// The rules evaluate against the same data without errors.
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(api+"rules", &rr); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, gr := range rr.Data.Groups {
		for _, r := range gr.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(loadRules(t).Groups[0].Rules); n != want {
		t.Errorf("Prometheus loaded %d rules, the file has %d", n, want)
	}
}

func getJSON(u string, v any) error {
	resp, err := httpc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// promQuery runs an instant query and returns how many series it gave.
func promQuery(api, q string) (int, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	resp, err := httpc.Get(api + "query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query error: %s", r.Error)
	}
	return len(r.Data.Result), nil
}

// listenAddrOf finds the loopback TCP port a process listens on (Prometheus, told to
// listen on port 0, does not print the port it got): its socket inodes from
// /proc/<pid>/fd matched against the LISTEN sockets in /proc/net/tcp.
func listenAddrOf(t *testing.T, p *proc) string {
	t.Helper()
	pid := p.cmd.Process.Pid
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("the process exited: %v", p.err)
		default:
		}
		inodes := map[string]bool{}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
			}
		}
		tcp, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(tcp), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is hex ip:port; st 0A is LISTEN; field 9 is the inode.
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				_, portHex, _ := strings.Cut(f[1], ":")
				port, err := strconv.ParseUint(portHex, 16, 16)
				if err == nil {
					addr := fmt.Sprintf("127.0.0.1:%d", port)
					if resp, err := httpc.Get("http://" + addr + "/-/ready"); err == nil {
						resp.Body.Close()
						if resp.StatusCode == 200 {
							return addr
						}
					}
				}
			}
		}
	}
	t.Fatalf("the process listens on no loopback port")
	return ""
}
