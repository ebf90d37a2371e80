package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/gateway/route"
)

// TestReloadNeverMixesConfigs reloads between two configs in a loop while unsigned API
// calls hit the two routes that change:
//
//   - pay.guarded goes to cluster a without auth in A, and to cluster guard with
//     filters: [auth] in B. Cluster guard exists in both, so a request that paired B's
//     routing with A's filter chains would reach it unsigned.
//   - pay.moved goes to cluster a in A, and to cluster fresh (which only B has) with auth
//     in B, so a request that paired B's routing with A's clusters would find no cluster.
//   - the proxied path /p/ goes to a in A and to fresh in B (auth cannot guard a path
//     route), so a proxied request must be answered by whichever backend its config names.
//
// The API calls come over HTTP and MMTP, all unsigned, so none may ever reach guard or
// fresh, and none may be answered 5xx: each must be served by A (200 from a) or refused
// by B's auth (401). Meanwhile the admin API changes a route in a loop: each change
// publishes a snapshot too, and must never pair the table with another config's clusters.
func TestReloadNeverMixesConfigs(t *testing.T) {
	var served, guard, fresh atomic.Int64
	be := func(n *atomic.Int64) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/p/") {
				io.WriteString(w, "proxied") // the proxied route: either backend may answer
				return
			}
			n.Add(1)
			io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, g1, f1 := be(&served), be(&guard), be(&fresh)
	head := fmt.Sprintf(`
log: {level: error}
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
  - {name: mobile, listen: "127.0.0.1:0", protocol: mmtp}
apps:
  - {id: wallet, secret_env: WALLET_SECRET}
clusters:
  - {name: a, hosts: [%q]}
  - {name: guard, hosts: [%q]}
`, a.Listener.Addr(), g1.Listener.Addr())
	cfgA := head + `
routes:
  - {api: pay.guarded, split: {a: 100}}
  - {api: pay.moved, split: {a: 100}}
  - {path: /p/, split: {a: 100}}
`
	cfgB := head + fmt.Sprintf(`  - {name: fresh, hosts: [%q]}
routes:
  - {api: pay.guarded, split: {guard: 100}, filters: [auth]}
  - {api: pay.moved, split: {fresh: 100}, filters: [auth]}
  - {path: /p/, split: {fresh: 100}}
`, f1.Listener.Addr())
	parse := func(y string) *config.Config {
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	env := func(k string) string {
		if k == "WALLET_SECRET" {
			return "s3cret-s3cret-s3cret"
		}
		return ""
	}
	g := runGateway(t, cfgA, Options{Getenv: env})
	web := "http://" + g.Addr("web").String()
	mobile := g.Addr("mobile").String()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var requests, refused atomic.Int64
	var mu sync.Mutex
	var bad []string
	fail := func(s string) {
		mu.Lock()
		bad = append(bad, s)
		mu.Unlock()
	}
	// call makes one request and returns its status and body.
	type call func() (int, string, error)
	httpCall := func(method, path string) call {
		c := &http.Client{Timeout: 10 * time.Second}
		return func() (int, string, error) {
			req, _ := http.NewRequest(method, web+path, strings.NewReader("x"))
			resp, err := c.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}
	}
	mmtpCall := func(op string) call {
		c, err := client.Dial(context.Background(), mobile, client.Options{AppID: "wallet", DeviceID: "d1", Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return func() (int, string, error) {
			resp, err := c.Call(context.Background(), op, nil, []byte("x"))
			if err != nil {
				return 0, "", err
			}
			return resp.Status, string(resp.Body), nil
		}
	}
	for _, w := range []struct {
		name string
		do   call
		want map[int]bool
	}{
		{"http pay.guarded", httpCall("POST", "/api/pay.guarded"), map[int]bool{200: true, 401: true}},
		{"http pay.moved", httpCall("POST", "/api/pay.moved"), map[int]bool{200: true, 401: true}},
		{"mmtp pay.guarded", mmtpCall("pay.guarded"), map[int]bool{200: true, 401: true}},
		{"mmtp pay.moved", mmtpCall("pay.moved"), map[int]bool{200: true, 401: true}},
		{"proxy /p/", httpCall("GET", "/p/x"), map[int]bool{200: true}},
	} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, body, err := w.do()
					if err != nil {
						fail(w.name + ": " + err.Error())
						return
					}
					requests.Add(1)
					if status == http.StatusUnauthorized {
						refused.Add(1)
					}
					if !w.want[status] {
						fail(fmt.Sprintf("%s: %d %s", w.name, status, body))
					}
				}
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			retry := i%2 == 0
			if _, err := g.router.UpdateRoute("pay.moved", route.RouteUpdate{Retry: &retry}); err != nil {
				fail("admin change: " + err.Error())
				return
			}
		}
	}()
	// Reload until both configs have served and been refused plenty, with a floor on
	// reloads so that the window between them is crossed many times.
	for i := 0; i < 400 || refused.Load() < 50 || served.Load() < 50; i++ {
		cfg := cfgA
		if i%2 == 0 {
			cfg = cfgB
		}
		if err := g.Reload(parse(cfg)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if i > 20000 {
			break
		}
	}
	close(stop)
	wg.Wait()
	if n := guard.Load(); n > 0 {
		t.Errorf("%d unsigned requests reached cluster guard, which only an auth route leads to", n)
	}
	if n := fresh.Load(); n > 0 {
		t.Errorf("%d unsigned requests reached cluster fresh, which only an auth route leads to", n)
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed; first: %s", len(bad), requests.Load(), bad[0])
	}
	t.Logf("%d requests: %d served by A, %d refused by B's auth", requests.Load(), served.Load(), refused.Load())
}

// TestReloadKeepsTheEngine: a reload builds new clusters on the engine that serves the
// listeners, not on a new one (a reload that made its own left Drain, Close and the
// hot upgrade working on an engine without the listeners, and the old one leaked).
func TestReloadKeepsTheEngine(t *testing.T) {
	const yml = `
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: be, hosts: ["127.0.0.1:1"], timeout: 2s}
routes:
  - {api: "*", split: {be: 100}}
`
	g := runGateway(t, yml, Options{})
	addr := g.Addr("web").String()
	g.mu.Lock()
	before := g.engine
	g.mu.Unlock()
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	after := g.engine
	g.mu.Unlock()
	if before != after {
		t.Errorf("Reload replaced the engine (%p -> %p)", before, after)
	}
	g.Close()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("listener %s still accepts after Close", addr)
	}
}
