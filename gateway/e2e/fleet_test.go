package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/internal/fleettest"
)

// fleetConfig is the fleet: both instances share one etcd and one Redis.
const fleetConfig = `
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
apps: [{id: shop, secret_env: SHOP_SECRET}]
clusters:
  - {name: a, hosts: [%q]}
  - {name: b, hosts: [%q]}
routes:
  - {api: demo.split, split: {a: 100}}
  - {api: shop.limited, split: {a: 100}, filters: [ratelimit], ratelimit: {rate: 100/s, burst: 20, key: api, scope: global}}
  - {api: shop.signed, split: {a: 100}, filters: [auth], auth: {replay: true}}
fleet:
  etcd: {endpoints: [%q], prefix: /mgw/}
  redis: {addr: %q}
`

// TestFleetDoneWhen is issue #16's "done when", with two real `mgw serve` processes, one
// etcd and one redis-server: a route put into etcd over its HTTP API is applied by both;
// `mgw route set` on one reaches the other through etcd; a nonce used on one is refused
// 401 on the other; a global 100/s limit lets 80-135 requests a second through both
// under load; a push published on one reaches a device connected to the other.
func TestFleetDoneWhen(t *testing.T) {
	e, r := fleettest.StartEtcd(t), fleettest.StartRedis(t)
	_, a := backend(t, "a")
	_, b := backend(t, "b")
	cfg := fmt.Sprintf(fleetConfig, a, b, e.Endpoint, r.Addr)
	g1, g2 := serve(t, cfg, "SHOP_SECRET=s3cret"), serve(t, cfg, "SHOP_SECRET=s3cret")
	gws := []*gw{g1, g2}
	servedBy := func(g *gw, op string) string {
		resp, err := http.Post("http://"+g.addrs["web"]+"/api/"+op, "text/plain", strings.NewReader("x"))
		if err != nil {
			return err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Demo-Backend")
	}
	both := func(want string) func() bool {
		return func() bool { return servedBy(g1, "demo.split") == want && servedBy(g2, "demo.split") == want }
	}
	if !both("a")() {
		t.Fatal("before etcd: demo.split is not on the file's cluster a")
	}

	// 1. A route written to etcd (its HTTP API, /v3/kv/put) is applied by both.
	b64 := base64.StdEncoding.EncodeToString
	put := fmt.Sprintf(`{"key": %q, "value": %q}`, b64([]byte("/mgw/routes/demo.split")), b64([]byte("split: {b: 100}\n")))
	began := time.Now()
	if out, err := curl(t, "-X", "POST", "-d", put, e.Endpoint+"/v3/kv/put"); err != nil || !strings.Contains(out, "revision") {
		t.Fatalf("etcd put: %v %s", err, out)
	}
	waitFor(t, 10*time.Second, both("b"))
	t.Logf("the etcd route was applied by both instances %v after the put", time.Since(began).Round(time.Millisecond))

	// `mgw route set` on g1 goes to etcd, so g2 follows.
	if code, out := runMgw(t, nil, "route", "set", "--admin", g1.addrs["admin"], "--api", "demo.split", "--split", "a=100"); code != 0 {
		t.Fatalf("mgw route set: exit %d\n%s", code, out)
	}
	waitFor(t, 10*time.Second, both("a"))

	// 2. A signed request's nonce used on one instance is refused 401 on the other.
	ts := fmt.Sprint(time.Now().UnixMilli())
	sign := mmtp.Sign([]byte("s3cret"), &mmtp.SignFields{Operation: "shop.signed", AppID: "shop", DeviceID: "d1", Timestamp: ts, Nonce: "n-1", Body: []byte("x")})
	signed := func(g *gw) string {
		out, err := curl(t, "-w", " %{http_code}", "-d", "x", "-H", "App-Id: shop", "-H", "Device-Id: d1", "-H", "Timestamp: "+ts,
			"-H", "Nonce: n-1", "-H", "Sign: "+sign, "http://"+g.addrs["web"]+"/api/shop.signed")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := signed(g1); !strings.HasSuffix(out, " 200") {
		t.Fatalf("signed request on g1: %s", out)
	}
	if out := signed(g2); !strings.HasSuffix(out, " 401") || !strings.Contains(out, "nonce") {
		t.Fatalf("the same nonce on g2: %s, want 401 replayed nonce", out)
	}

	// 3. A global 100/s limit across both, under load from 8 workers for 2 seconds.
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(2 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			url := "http://" + gws[w%2].addrs["web"] + "/api/shop.limited"
			for i := 0; i < 100000 && time.Now().Before(stop); i++ {
				resp, err := c.Post(url, "text/plain", strings.NewReader("x"))
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	rate := float64(ok.Load()) / secs
	t.Logf("global limit: %d admitted, %d refused 429 in %.2fs across two instances: %.0f/s admitted", ok.Load(), limited.Load(), secs, rate)
	if limited.Load() == 0 {
		t.Fatalf("the load (%d admitted in %.2fs) never reached the limit", ok.Load(), secs)
	}
	if rate < 80 || rate > 135 {
		t.Fatalf("%.0f requests/s admitted across both instances, want 80-135 for a global 100/s", rate)
	}

	// 4. A push published on one instance reaches a device connected to the other.
	dev, h := signedHelloDevice(t, g2.addrs["mobile"], "s3cret", "shop", "phone-1")
	if h["status"] != "200" || h["push-epoch"] == "" {
		t.Fatalf("HELLO on g2: %v", h)
	}
	out, err := curl(t, "-w", " %{http_code}", "-d", `{"app":"shop","device":"phone-1","topic":"order.paid","body":"hi"}`, "http://"+g1.addrs["admin"]+"/v1/push")
	if err != nil || !strings.HasSuffix(out, " 202") {
		t.Fatalf("publish on g1: %v %s", err, out)
	}
	if ph, body := dev.push(); ph["seq"] != "1" || ph["epoch"] != h["push-epoch"] || body != "hi" {
		t.Fatalf("push on g2: %v %q", ph, body)
	}
}

// signedHelloDevice is helloDevice where apps sign their HELLO.
func signedHelloDevice(t *testing.T, addr, secret, app, dev string) (*pushDevice, map[string]string) {
	t.Helper()
	ts, nonce := fmt.Sprint(time.Now().UnixMilli()), fmt.Sprint("hello-", time.Now().UnixNano())
	sign := mmtp.Sign([]byte(secret), &mmtp.SignFields{Operation: mmtp.HelloOperation, AppID: app, DeviceID: dev, Timestamp: ts, Nonce: nonce})
	return helloWith(t, addr, codec.Header{{Key: "app-id", Value: app}, {Key: "device-id", Value: dev},
		{Key: "timestamp", Value: ts}, {Key: "nonce", Value: nonce}, {Key: "sign", Value: sign}})
}
