package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/internal/fleettest"
)

// namedBackend answers every request with its name.
func namedBackend(t *testing.T, name string) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// eventually polls cond until it holds or d passes; it reports what it last saw.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last %s", what, d, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFleetEtcdOverlay runs a gateway against a real etcd: an entry written under the
// prefix overrides the file's route, an invalid one is refused and shown in /v1/config
// while the last good config stays, a delete returns to the file's route, an admin change
// goes to etcd, and with etcd down the gateway keeps serving, then catches up.
func TestFleetEtcdOverlay(t *testing.T) {
	e := fleettest.StartEtcd(t)
	one, two := namedBackend(t, "one"), namedBackend(t, "two")
	g := runGateway(t, fmt.Sprintf(`
log: {level: error}
admin: {listen: "127.0.0.1:0"}
listeners: [{name: web, listen: "127.0.0.1:0", protocol: http1}]
clusters:
  - {name: one, hosts: [%q]}
  - {name: two, hosts: [%q]}
routes:
  - {api: demo.split, split: {one: 100}}
fleet: {etcd: {endpoints: [%q], prefix: /t/}}
`, one, two, e.Endpoint), Options{})
	web := "http://" + g.Addr("web").String() + "/api/demo.split"
	admin := "http://" + g.AdminAddr().String()
	call := func() (bool, string) { return false, get(t, web) }
	servedBy := func(want string) func() (bool, string) {
		return func() (bool, string) { got := get(t, web); return got == want, got }
	}

	if _, got := call(); got != "one" {
		t.Fatalf("before any etcd entry: %q, want the file's route (one)", got)
	}
	e.Put(t, "/t/routes/demo.split", "split: {two: 100}\n")
	eventually(t, 3*time.Second, "etcd route applied", servedBy("two"))

	// Invalid: a cluster nobody defines. Refused, counted, shown; the last good stays.
	e.Put(t, "/t/routes/demo.bad", "split: {nowhere: 100}\n")
	e.Put(t, "/t/routes/demo.worse", "splitt: {one: 1}\n")
	var view struct {
		FleetConfig struct {
			Entries      []string
			Refused      []struct{ Key, Error string }
			RefusedTotal int `json:"refused_total"`
		} `json:"fleet_config"`
	}
	eventually(t, 3*time.Second, "invalid entries refused", func() (bool, string) {
		body := get(t, admin+"/v1/config")
		view.FleetConfig.Refused = nil
		json.Unmarshal([]byte(body), &view)
		return len(view.FleetConfig.Refused) == 2, body
	})
	r := view.FleetConfig.Refused
	if r[0].Key != "/t/routes/demo.bad" || !strings.Contains(r[0].Error, "nowhere") ||
		r[1].Key != "/t/routes/demo.worse" || !strings.Contains(r[1].Error, "splitt") {
		t.Fatalf("refusals: %+v", r)
	}
	if fmt.Sprint(view.FleetConfig.Entries) != "[/t/routes/demo.split]" {
		t.Fatalf("entries in force: %v", view.FleetConfig.Entries)
	}
	if m := get(t, admin+"/metrics"); !strings.Contains(m, "mgw_fleet_config_refused_total 2") {
		t.Fatalf("refusals not counted:\n%s", grepLines(m, "mgw_fleet"))
	}
	if _, got := call(); got != "two" {
		t.Fatalf("after the refusals: %q, want the last good route (two)", got)
	}
	// Fixing the entry takes it out of the refused list.
	e.Delete(t, "/t/routes/demo.bad")
	e.Delete(t, "/t/routes/demo.worse")

	// Delete: back to the file's route.
	e.Delete(t, "/t/routes/demo.split")
	eventually(t, 3*time.Second, "delete returns to the file's route", servedBy("one"))

	// The admin API writes to etcd.
	code, body := put(t, admin+"/v1/routes/demo.split", `{"split": {"two": 100}}`)
	if code != 200 {
		t.Fatalf("admin PUT: %d %s", code, body)
	}
	if v, ok := e.Get(t, "/t/routes/demo.split"); !ok || !strings.Contains(v, "two: 100") {
		t.Fatalf("etcd after the admin PUT: %q (present %v)", v, ok)
	}
	eventually(t, 3*time.Second, "admin change in force", servedBy("two"))

	// etcd down: the gateway keeps serving; a change cannot be stored (503).
	e.Stop()
	for i := 0; i < 5; i++ {
		if _, got := call(); got != "two" {
			t.Fatalf("with etcd down: %q", got)
		}
	}
	if code, body := put(t, admin+"/v1/routes/demo.split", `{"split": {"one": 100}}`); code != http.StatusServiceUnavailable {
		t.Fatalf("admin PUT with etcd down: %d %s", code, body)
	}
	if _, got := call(); got != "two" {
		t.Fatalf("a refused admin change was applied: %q", got)
	}
	e.Restart(e.Ready)
	e.Put(t, "/t/routes/demo.split", "split: {one: 100}\n")
	eventually(t, 10*time.Second, "a change after etcd came back", servedBy("one"))
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if strings.Contains(url, "/v1/") || strings.HasSuffix(url, "/metrics") {
		resp, err = http.Get(url)
	}
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func put(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFleetPushAcrossInstances runs two gateways on one real Redis: a publish on one
// reaches the device connected to the other, and the device, moving to the first,
// resumes from its push-seq out of the shared log.
func TestFleetPushAcrossInstances(t *testing.T) {
	r := fleettest.StartRedis(t)
	fleet := fmt.Sprintf("log: {level: error}\nfleet: {redis: {addr: %q, prefix: \"t:\"}}", r.Addr)
	g1, g2 := runPushGateway(t, fleet), runPushGateway(t, fleet)

	d := dialPush(t, g2)
	h := d.hello("shop", "phone-1")
	epoch := h["push-epoch"]
	if epoch == "" || h["push-seq"] != "0" {
		t.Fatalf("HELLO on g2: %v", h)
	}
	for i := 1; i <= 2; i++ {
		if seq, ep := mustPublish(t, g1, "phone-1", "order.paid", fmt.Sprint("body-", i)); seq != uint64(i) || ep != epoch {
			t.Fatalf("publish %d on g1: seq %d epoch %q, want the epoch g2 gave %q", i, seq, ep, epoch)
		}
	}
	p1, p2 := d.nextPush(), d.nextPush()
	if pushSeqs([]pushFrame{p1, p2}) != "1,2" || p2.body != "body-2" || p1.epoch != epoch {
		t.Fatalf("pushes on g2: %+v %+v", p1, p2)
	}
	d.ack(p1.stream)
	d.pushesUntilPong() // the ack is processed before the connection goes
	d.c.Close()

	mustPublish(t, g1, "phone-1", "order.paid", "body-3") // offline: waits in the log
	m := dialPush(t, g1)
	h = m.hello("shop", "phone-1", "push-epoch", epoch, "push-seq", "1")
	if h["push-reset"] != "" || h["push-epoch"] != epoch || h["push-seq"] != "3" {
		t.Fatalf("resume on g1 from push-seq 1: %v", h)
	}
	got := []pushFrame{m.nextPush(), m.nextPush()}
	if pushSeqs(got) != "2,3" || got[1].body != "body-3" {
		t.Fatalf("resumed pushes on g1: %+v", got)
	}
	// The device is on g1 now: a publish on g2 reaches it there.
	mustPublish(t, g2, "phone-1", "order.paid", "body-4")
	if p := m.nextPush(); p.seq != 4 || p.body != "body-4" {
		t.Fatalf("push published on g2: %+v", p)
	}
	if mt := get(t, "http://"+g2.AdminAddr().String()+"/metrics"); !strings.Contains(mt, "mgw_fleet_push_forwarded_total 1") {
		t.Fatalf("g2 did not count its forward:\n%s", grepLines(mt, "mgw_fleet"))
	}
}

// TestFleetGlobalLimitAndNonces runs two gateways on one real Redis: a scope: global
// limit is one bucket for both, and a signed request's nonce used on one is a replay on
// the other.
func TestFleetGlobalLimitAndNonces(t *testing.T) {
	r := fleettest.StartRedis(t)
	one := namedBackend(t, "one")
	cfg := fmt.Sprintf(`
log: {level: error}
listeners: [{name: web, listen: "127.0.0.1:0", protocol: http1}]
apps: [{id: shop, secret_env: SHOP_SECRET}]
clusters: [{name: one, hosts: [%q]}]
routes:
  - {api: limited.op, split: {one: 100}, filters: [ratelimit], ratelimit: {rate: 10/s, burst: 5, key: api, scope: global}}
  - {api: signed.op, split: {one: 100}, filters: [auth], auth: {replay: true}}
fleet: {redis: {addr: %q, prefix: "t:"}}
`, one, r.Addr)
	env := func(k string) string {
		if k == "SHOP_SECRET" {
			return "s3cret"
		}
		return ""
	}
	g1, g2 := runGateway(t, cfg, Options{Getenv: env}), runGateway(t, cfg, Options{Getenv: env})
	urls := []string{"http://" + g1.Addr("web").String(), "http://" + g2.Addr("web").String()}

	start := time.Now()
	admitted := 0
	for i := 0; i < 20; i++ {
		resp, err := http.Post(urls[i%2]+"/api/limited.op", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			admitted++
		case 429:
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without retry-after")
			}
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// One bucket: the burst plus what 10/s refilled meanwhile. Two per-instance buckets
	// would admit at least 10.
	most := 5 + int(time.Since(start).Seconds()*10) + 1
	if admitted < 5 || admitted > most {
		t.Fatalf("%d of 20 admitted across two instances in %v, want 5..%d", admitted, time.Since(start), most)
	}

	ts := fmt.Sprint(time.Now().UnixMilli())
	sign := mmtp.Sign([]byte("s3cret"), &mmtp.SignFields{Operation: "signed.op", AppID: "shop", DeviceID: "d1",
		Timestamp: ts, Nonce: "nonce-1", Body: []byte("x")})
	signed := func(base string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/signed.op", strings.NewReader("x"))
		for k, v := range map[string]string{"App-Id": "shop", "Device-Id": "d1", "Timestamp": ts, "Nonce": "nonce-1", "Sign": sign} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := signed(urls[0]); code != 200 {
		t.Fatalf("signed request on g1: %d %s", code, body)
	}
	if code, body := signed(urls[1]); code != 401 || !strings.Contains(body, "nonce") {
		t.Fatalf("the same nonce on g2: %d %s, want 401 naming the nonce", code, body)
	}
}
