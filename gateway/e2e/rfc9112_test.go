package e2e

// RFC 9112 corners on the HTTP listener, seen from outside: absolute-form targets,
// chunk extensions, an over-long request line; and the config-mirroring gauges across
// reloads. Each test runs the real `mgw serve` in front of a real `mgw backend`.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// described is the part of the demo backend's self-description these tests read.
type described struct {
	Backend   string `json:"backend"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query"`
	Host      string `json:"host"`
	BodyBytes int64  `json:"body_bytes"`
}

func describedBody(t *testing.T, body string) described {
	t.Helper()
	var d described
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return d
}

// An absolute-form request (RFC 9112 3.2.2) is served like its origin-form twin: proxied
// with the path and query as target and the target's authority as Host (the client's Host
// field is replaced), or, for POST http://host/api/<op>, called as that API. Only http
// URIs are served; CONNECT is refused.
func TestAbsoluteFormTargets(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	web := g.addrs["web"]

	r := dialDoor(t, web)
	r.send([]byte("GET http://b.example:8080/x/y?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n"))
	resp, body := r.httpResponse(10*time.Second, "")
	if resp.StatusCode != 200 {
		t.Fatalf("absolute-form GET: %d %q", resp.StatusCode, body)
	}
	if d := describedBody(t, body); d.Path != "/x/y" || d.Query != "q=1" || d.Host != "b.example:8080" || d.Method != "GET" {
		t.Errorf("backend saw %+v; want GET /x/y?q=1 with Host b.example:8080", d)
	}
	// Same connection: the API path, reached through absolute-form as through origin-form.
	r.send([]byte("POST http://b.example/api/demo.echo HTTP/1.1\r\nHost: b.example\r\nContent-Length: 5\r\n\r\nhello"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || body != "hello" {
		t.Errorf("absolute-form POST /api/demo.echo: %d %q", resp.StatusCode, body)
	}
	// No path: "/" (RFC 9112 3.2.4).
	r.send([]byte("GET http://b.example HTTP/1.1\r\nHost: b.example\r\n\r\n"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || describedBody(t, body).Path != "/" {
		t.Errorf("absolute-form without path: %d %q", resp.StatusCode, body)
	}

	// curl speaks absolute-form when told the gateway is its proxy.
	out, err := curl(t, "-x", "http://"+web, "http://c.example/via/curl?z=2")
	if err != nil {
		t.Fatal(err)
	}
	if d := describedBody(t, out); d.Path != "/via/curl" || d.Query != "z=2" || d.Host != "c.example" {
		t.Errorf("curl -x: backend saw %+v", d)
	}
	out, err = curl(t, "-x", "http://"+web, "-d", "via proxy", "http://c.example/api/demo.echo")
	if err != nil || out != "via proxy" {
		t.Errorf("curl -x POST /api/demo.echo: %q %v", out, err)
	}

	for _, tc := range []struct {
		req    string
		status int
		reason string
	}{
		{"GET https://b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400, `scheme "https"`},
		{"GET http:///x HTTP/1.1\r\nHost: b.example\r\n\r\n", 400, "empty authority"},
		{"CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n", 501, "CONNECT"},
		{"GET * HTTP/1.1\r\nHost: b.example\r\n\r\n", 400, "asterisk-form"},
	} {
		expectRefusal(t, web, tc.req, tc.status, tc.reason)
	}
}

// Chunk extensions with quoted strings and BWS (RFC 9112 7.1.1) are parsed, ignored and
// the body forwarded, on the API path and the proxied path; a malformed one is a 400
// naming the byte.
func TestChunkExtensions(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	r := dialDoor(t, g.addrs["web"])
	const te = "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\n" + te + "5;name=\"a;b\"\r\nhello\r\n6 ; q = \"x\\\"y\" ; z\r\n world\r\n0\r\n\r\n"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || body != "hello world" {
		t.Errorf("API call with chunk extensions: %d %q", resp.StatusCode, body)
	}
	r.send([]byte("PUT /upload HTTP/1.1\r\n" + te + "3 ;n=\"a;b\"\r\nabc\r\n0\r\n\r\n"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || describedBody(t, body).BodyBytes != 3 {
		t.Errorf("proxied body with chunk extensions: %d %q", resp.StatusCode, body)
	}
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\n" + te + "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"))
	resp, body := r.httpResponse(10*time.Second, "")
	if resp.StatusCode != 400 || !strings.Contains(body, `invalid byte 'c' in chunk extension`) || !resp.Close {
		t.Errorf("malformed extension: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	r.closed(5 * time.Second)
}

// A request line longer than the head limit is 414 and a close, whether it arrived whole
// or is still arriving; header fields over the limit stay 431.
func TestRequestLineTooLong(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	web := g.addrs["web"]
	for name, req := range map[string]string{
		"whole":      "GET /" + strings.Repeat("a", 20<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"incomplete": "GET /" + strings.Repeat("a", 20<<10),
	} {
		r := dialDoor(t, web)
		r.send([]byte(req))
		resp, body := r.httpResponse(10*time.Second, "")
		if resp.StatusCode != http.StatusRequestURITooLong || !strings.Contains(body, "request line longer than 16384 bytes") || !resp.Close {
			t.Errorf("%s: %d %q close=%v, want 414 and close", name, resp.StatusCode, body, resp.Close)
			continue
		}
		r.closed(5 * time.Second)
	}
	r := dialDoor(t, web)
	r.send([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\n\r\n"))
	if resp, _ := r.httpResponse(10*time.Second, ""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header field: %d, want 431", resp.StatusCode)
	}
	if n := metric(g.scrape(t), `mgw_protocol_errors_total{listener="web",reason="http_414"}`); n != 2 {
		t.Errorf("http_414 protocol errors = %v, want 2", n)
	}
}

// mgw_upstream_hosts_healthy mirrors the live config: the hosts of the cluster as it is
// now, not the sum of every cluster of that name built so far (at start, and across
// reloads while the old clusters wait out their requests in flight).
func TestHostGaugesFollowConfig(t *testing.T) {
	_, b1 := backend(t, "b1")
	_, b2 := backend(t, "b2")
	one := basicConfig(b1, "")
	two := strings.Replace(one, fmt.Sprintf("hosts: [%q]", b1), fmt.Sprintf("hosts: [%q, %q]", b1, b2), 1)
	if one == two {
		t.Fatal("config substitution failed")
	}
	g := serve(t, one)
	gauge := func() (healthy, ejected float64) {
		text := g.scrape(t)
		return metric(text, `mgw_upstream_hosts_healthy{cluster="demo"}`), metric(text, `mgw_upstream_hosts_ejected{cluster="demo"}`)
	}
	if h, e := gauge(); h != 1 || e != 0 {
		t.Fatalf("at start with one host: hosts_healthy %v, hosts_ejected %v; want 1, 0", h, e)
	}
	path := filepath.Join(g.dir, "mgw.yaml")
	reloads := 0
	reload := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		reloads++
		g.cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, func() bool { return strings.Count(g.output(), "configuration reloaded") == reloads })
	}
	reload(two)
	if h, e := gauge(); h != 2 || e != 0 {
		t.Errorf("after reload to two hosts: hosts_healthy %v, hosts_ejected %v; want 2, 0", h, e)
	}
	reload(one)
	if h, e := gauge(); h != 1 || e != 0 {
		t.Errorf("after reload back to one host: hosts_healthy %v, hosts_ejected %v; want 1, 0", h, e)
	}
	// A cluster the config no longer has is no longer reported.
	reload(strings.Replace(strings.Replace(one, "name: demo", "name: demo2", 1), "demo: 100", "demo2: 100", -1))
	text := g.scrape(t)
	if strings.Contains(text, `mgw_upstream_hosts_healthy{cluster="demo"}`) || metric(text, `mgw_upstream_hosts_healthy{cluster="demo2"}`) != 1 {
		t.Errorf("after renaming the cluster:\n%s", grepLines(text, "mgw_upstream_hosts_"))
	}
}

func grepLines(text, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// demo.sleep answers its own request body, so concurrent sleeps of the same length can be
// told apart by a tag after the milliseconds.
func TestDemoSleepAnswersItsBody(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := fmt.Sprintf("300 request-%d", i)
			out, err := curl(t, "-d", sent, "http://"+g.addrs["web"]+"/api/demo.sleep")
			if err != nil || out != sent {
				t.Errorf("demo.sleep %q answered %q, %v", sent, out, err)
			}
		}()
	}
	wg.Wait()
	c := g.mmtpClient(t, "mobile", client.Options{})
	if resp := call(t, c, "demo.sleep", []byte("20")); resp.Status != 200 || string(resp.Body) != "20" {
		t.Errorf("MMTP demo.sleep 20: %d %q", resp.Status, resp.Body)
	}
}
