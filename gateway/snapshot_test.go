package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/gateway/config"
)

// TestReloadNeverMixesConfigs reloads between two configs in a loop while unsigned API
// calls hit the two routes that change:
//
//   - pay.guarded goes to cluster a without auth in A, and to cluster guard with
//     filters: [auth] in B. Cluster guard exists in both, so a request that paired B's
//     routing with A's filter chains would reach it unsigned.
//   - pay.moved goes to cluster a in A, and to cluster fresh (which only B has) with auth
//     in B, so a request that paired B's routing with A's clusters would find no cluster.
//
// Every request is unsigned, so no request may ever reach guard or fresh, and none may be
// answered 5xx: each must be served by A (200 from a) or refused by B's auth (401).
func TestReloadNeverMixesConfigs(t *testing.T) {
	var served, guard, fresh atomic.Int64
	be := func(n *atomic.Int64) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
`
	cfgB := head + fmt.Sprintf(`  - {name: fresh, hosts: [%q]}
routes:
  - {api: pay.guarded, split: {guard: 100}, filters: [auth]}
  - {api: pay.moved, split: {fresh: 100}, filters: [auth]}
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
	url := "http://" + g.Addr("web").String() + "/api/"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var requests, refused atomic.Int64
	var mu sync.Mutex
	var bad []string
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			op := []string{"pay.guarded", "pay.moved"}[w%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Post(url+op, "text/plain", strings.NewReader("x"))
				if err != nil {
					mu.Lock()
					bad = append(bad, op+": "+err.Error())
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				requests.Add(1)
				switch resp.StatusCode {
				case http.StatusOK:
				case http.StatusUnauthorized:
					refused.Add(1)
				default:
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %d %s", op, resp.StatusCode, body))
					mu.Unlock()
				}
			}
		}()
	}
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
