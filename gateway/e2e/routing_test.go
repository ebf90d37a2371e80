package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// threeBackends starts old, new and central backends and a gateway whose route pay.*
// splits old/new and falls back to central. new is tagged mesh.
func threeBackends(t *testing.T, split string) (*gw, map[string]*proc) {
	procs := map[string]*proc{}
	addrs := map[string]string{}
	for _, n := range []string{"old", "new", "central"} {
		procs[n], addrs[n] = backend(t, n)
	}
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
instance: {zone: zone-a, labels: {canary: "yes"}}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_in_flight: 256}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
apps:
  - {id: wallet} # a mesh-only switch names a configured app, through the admin API as in a file
clusters:
  - {name: old, hosts: [%q], timeout: 5s, health_check: {path: /healthz, interval: 500ms, timeout: 500ms, unhealthy_threshold: 2}}
  - {name: new, hosts: [%q], timeout: 5s, tags: [mesh]}
  - {name: central, hosts: [%q], timeout: 5s}
routes:
  - api: "pay.*"
    split: %s
    sticky: device
    fallback: [central]
`, addrs["old"], addrs["new"], addrs["central"], split))
	return g, procs
}

// sides calls pay.demo.echo once per device over a few MMTP connections and returns the
// backend that answered each device.
func sides(t *testing.T, g *gw, devices []string, hdr func(dev string) codec.Header) map[string]string {
	t.Helper()
	conns := make([]*client.Client, 8)
	for i := range conns {
		conns[i] = g.mmtpClient(t, "mobile", client.Options{})
	}
	out := make(map[string]string, len(devices))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	for i, dev := range devices {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			h := codec.Header{{Key: "device-id", Value: dev}}
			if hdr != nil {
				h = append(h, hdr(dev)...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := conns[i%len(conns)].Call(ctx, "pay.demo.echo", h, []byte("x"))
			if err != nil || resp.Status != 200 {
				t.Errorf("device %s: %v %v", dev, resp, err)
				return
			}
			mu.Lock()
			out[dev] = resp.Header.Value("x-demo-backend")
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func devices(n int, prefix string) []string {
	d := make([]string, n)
	for i := range d {
		d[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return d
}

func count(m map[string]string) map[string]int {
	c := map[string]int{}
	for _, v := range m {
		c[v]++
	}
	return c
}

func admin(t *testing.T, g *gw, method, path, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+g.addrs["admin"]+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("admin %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return string(b)
}

func TestSplitIsAccurateStickyAndMonotonic(t *testing.T) {
	g, _ := threeBackends(t, "{old: 95, new: 5}")
	devs := devices(20000, "dev")
	first := sides(t, g, devs, nil)
	c := count(first)
	// 5% of 20000 is 1000 with sigma sqrt(20000*.05*.95) = 30.8: allow 4 sigma.
	if math.Abs(float64(c["new"])-1000) > 4*30.8 || c["old"]+c["new"] != len(devs) {
		t.Fatalf("95/5 split over %d devices landed %v", len(devs), c)
	}
	// The same devices land on the same side again.
	again := sides(t, g, devs[:3000], nil)
	for _, d := range devs[:3000] {
		if again[d] != first[d] {
			t.Fatalf("device %s moved from %s to %s with the split unchanged", d, first[d], again[d])
		}
	}
	// Raising new to 10% only moves devices into new.
	admin(t, g, "PUT", "/v1/routes/pay.*", `{"split": {"old": 90, "new": 10}}`)
	raised := sides(t, g, devs, nil)
	moved := 0
	for _, d := range devs {
		if first[d] == "new" && raised[d] != "new" {
			t.Fatalf("device %s left new when new was raised", d)
		}
		if first[d] == "old" && raised[d] == "new" {
			moved++
		}
	}
	if n := count(raised)["new"]; math.Abs(float64(n)-2000) > 4*42.4 || moved == 0 {
		t.Fatalf("after raising to 10%%: new has %d, %d moved", n, moved)
	}
}

func TestSwitchesOverrideWithinASecond(t *testing.T) {
	g, _ := threeBackends(t, "{old: 50, new: 50}")
	devs := devices(400, "sw")
	check := func(name string, hdr func(string) codec.Header, want func(map[string]int) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			c := count(sides(t, g, devs, hdr))
			if want(c) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not in force within a second: %v", name, c)
			}
		}
	}
	check("split", nil, func(c map[string]int) bool { return c["old"] > 100 && c["new"] > 100 })

	// A zone switch for this instance's zone: no traffic to mesh-tagged clusters.
	admin(t, g, "PUT", "/v1/switches/zones", `{"zone-a": {"mesh": 0}}`)
	check("zone switch", nil, func(c map[string]int) bool { return c["new"] == 0 && c["old"] == len(devs) })
	eff := admin(t, g, "GET", "/v1/routes/pay.*/effective", "")
	if !strings.Contains(eff, `"decided_by": "zone"`) && !strings.Contains(eff, `"decided_by":"zone"`) {
		t.Fatalf("effective after zone switch: %s", eff)
	}
	// A mesh-only app beats the zone switch: all its calls go to mesh clusters.
	admin(t, g, "PUT", "/v1/switches/mesh_only_apps", `["wallet"]`)
	wallet := func(string) codec.Header { return codec.Header{{Key: "app-id", Value: "wallet"}} }
	check("mesh-only app", wallet, func(c map[string]int) bool { return c["new"] == len(devs) })
	// Other apps still follow the zone switch.
	check("other app under zone switch", nil, func(c map[string]int) bool { return c["new"] == 0 })
	// Removing the zone switch restores the split.
	admin(t, g, "PUT", "/v1/switches/zones", `{}`)
	check("split restored", nil, func(c map[string]int) bool { return c["old"] > 100 && c["new"] > 100 })
}

func TestKilledBackendFallsBackWithoutErrors(t *testing.T) {
	g, procs := threeBackends(t, "{old: 100}")
	devs := devices(200, "fb")
	if c := count(sides(t, g, devs, nil)); c["old"] != len(devs) {
		t.Fatalf("before: %v", c)
	}
	procs["old"].cmd.Process.Signal(syscall.SIGKILL)
	procs["old"].wait(10 * time.Second)
	// Once the health check has seen it down (or a connection is refused, which happens
	// before anything is sent), every call goes to central. Requests racing the kill on
	// kept-alive connections could fail; these start after the gateway knows.
	waitFor(t, 10*time.Second, func() bool {
		return strings.Contains(admin(t, g, "GET", "/v1/clusters", ""), `"healthy": false`)
	})
	if c := count(sides(t, g, devs, nil)); c["central"] != len(devs) {
		t.Fatalf("after killing old: %v", c)
	}
}

// TestSplitChangesUnderLoad flips the split every few milliseconds while MMTP and HTTP
// requests run: none fails, and none lands on central, which no table ever allows (it is
// only the fallback, and every backend stays up).
func TestSplitChangesUnderLoad(t *testing.T) {
	g, _ := threeBackends(t, "{old: 50, new: 50}")
	stop := make(chan struct{})
	var flips atomic.Int64
	go func() {
		splits := []string{`{"old": 100, "new": 0}`, `{"old": 50, "new": 50}`, `{"old": 0, "new": 100}`, `{"old": 1, "new": 99}`}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			req, _ := http.NewRequest("PUT", "http://"+g.addrs["admin"]+"/v1/routes/pay.*", strings.NewReader(`{"split": `+splits[i%len(splits)]+`}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				flips.Add(1)
			}
		}
	}()
	var failed, central, total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(2)
		go func() { // MMTP
			defer wg.Done()
			c := g.mmtpClient(t, "mobile", client.Options{})
			for i := 0; time.Now().Before(deadline); i++ {
				resp, err := c.Call(context.Background(), "pay.demo.echo", codec.Header{{Key: "device-id", Value: fmt.Sprint("m", w, i)}}, []byte("x"))
				total.Add(1)
				if err != nil || resp.Status != 200 {
					failed.Add(1)
				} else if resp.Header.Value("x-demo-backend") == "central" {
					central.Add(1)
				}
			}
		}()
		go func() { // HTTP, keep-alive
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				req, _ := http.NewRequest("POST", "http://"+g.addrs["web"]+"/api/pay.demo.echo", strings.NewReader("x"))
				req.Header.Set("Device-Id", fmt.Sprint("h", w, i))
				resp, err := http.DefaultClient.Do(req)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else if resp.Header.Get("X-Demo-Backend") == "central" {
					central.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if flips.Load() < 100 || total.Load() < 500 {
		t.Fatalf("too little happened: %d flips, %d requests", flips.Load(), total.Load())
	}
	if failed.Load() != 0 || central.Load() != 0 {
		t.Fatalf("%d of %d requests failed and %d landed on central during %d split changes",
			failed.Load(), total.Load(), central.Load(), flips.Load())
	}
	t.Logf("%d requests, %d split changes, no failures", total.Load(), flips.Load())
}
