package config

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func loadFull(t *testing.T) *Config {
	t.Helper()
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("full.yaml invalid: %v", err)
	}
	return c
}

func TestFullValues(t *testing.T) {
	c := loadFull(t)
	r := c.Routes[0]
	if r.API != "alipay.trade.pay" || r.Split["decentralized"] != 95 || r.Split["mesh"] != 5 ||
		!reflect.DeepEqual(r.Fallback, []string{"mesh", "central"}) || r.Timeout.D() != 1500*time.Millisecond {
		t.Errorf("route 0 = %+v", r)
	}
	if r.RateLimit["rate"] != "2000/s" || r.RateLimit["burst"] != 200 {
		t.Errorf("ratelimit = %+v", r.RateLimit)
	}
	if f := r.Force[1]; f.Header == nil || f.Header.Name != "x-canary" || !f.Never {
		t.Errorf("force[1] = %+v", f)
	}
	// The filter defaults its own options (filters/ratelimit), so the config keeps zeros.
	if rl := c.Routes[1].RateLimit; len(rl) != 2 || rl["burst"] != nil || rl["max_keys"] != nil {
		t.Errorf("route 1 ratelimit = %+v, want the unset options left for the filter", rl)
	}
	if c.Switches.Labels["mesh=on"]["mesh"] != 50 || c.Switches.Zones["zone-b"]["mesh"] != 0 {
		t.Errorf("switches = %+v", c.Switches)
	}
	if q, p := c.Runtime.Budgets(); q != 512<<20 || p != -1 {
		t.Errorf("runtime budgets = %d, %d; want 512MiB, -1 (off)", q, p)
	}
	if n, ok := c.Runtime.MemoryLimit(); !ok || n != 2<<30 {
		t.Errorf("MemoryLimit = %d %v", n, ok)
	}
	if a := c.Admission; a.MinLimit != 8 || a.MaxLimit != 4096 || a.QueueTarget.D() != time.Millisecond ||
		a.ShedAfter.D() != 10*time.Millisecond || a.Limit != 0 || a.Off {
		t.Errorf("admission = %+v", a)
	}
	if p := c.Push; p.MaxMessages != 32 || p.DefaultTTL.D() != time.Hour || p.MaxTTL.D() != 48*time.Hour {
		t.Errorf("push = %+v", p)
	}
	if mb, b := c.Push.Bytes(); mb != 32<<10 || b != 16<<20 {
		t.Errorf("push bytes = %d, %d; want 32KiB, 16MiB", mb, b)
	}
	if cl := c.Cluster("mesh"); cl.HealthCheck.Interval != DefaultHealthInterval || cl.Policy != "round_robin" {
		t.Errorf("mesh cluster defaults = %+v %+v", cl, cl.HealthCheck)
	}
	if l := c.Listener("web"); l.WriteStallTimeout.D() != 15*time.Second || l.BodyTimeout.D() != 45*time.Second {
		t.Errorf("web write_stall_timeout, body_timeout = %v, %v; want 15s, 45s", l.WriteStallTimeout, l.BodyTimeout)
	}
	if l := c.Listener("mobile"); l.WriteStallTimeout.D() != 20*time.Second {
		t.Errorf("mobile write_stall_timeout = %v, want 20s", l.WriteStallTimeout)
	}
	if c.Cluster("nope") != nil || c.Listener("nope") != nil || c.App("nope") != nil {
		t.Error("lookup of an unknown name returned non-nil")
	}
}

// TestFullRoundTrip marshals the parsed config back to YAML and JSON and reads it again: the
// writers must produce what the readers accept, field for field. The comparison is of the
// re-marshalled text, since a nil and an empty list are the same config.
func TestFullRoundTrip(t *testing.T) {
	c := loadFull(t)
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(y)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, y)
	}
	if y2, _ := yaml.Marshal(c2); string(y) != string(y2) {
		t.Errorf("YAML round trip differs:\n%s\n%s", y, y2)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var c3 Config
	if err := json.Unmarshal(j, &c3); err != nil {
		t.Fatalf("JSON re-read: %v\n%s", err, j)
	}
	if j2, _ := json.Marshal(&c3); string(j) != string(j2) {
		t.Errorf("JSON round trip differs:\n%s\n%s", j, j2)
	}
	if y3, _ := yaml.Marshal(&c3); string(y) != string(y3) {
		t.Errorf("JSON and YAML disagree:\n%s\n%s", y, y3)
	}
	// JSON is YAML: Parse reads the JSON form too (the admin API's PUT can use it).
	c4, err := Parse(j)
	if err != nil {
		t.Fatalf("Parse of the JSON form: %v", err)
	}
	if y4, _ := yaml.Marshal(c4); string(y) != string(y4) {
		t.Errorf("Parse(JSON) differs:\n%s\n%s", y, y4)
	}
	if !strings.Contains(string(j), `"timeout":"1.5s"`) {
		t.Errorf("durations are not written as strings: %s", j)
	}
}

// TestClone checks Clone copies everything (DeepEqual) and shares nothing (mutating the
// copy leaves the original intact).
func TestClone(t *testing.T) {
	c := loadFull(t)
	orig, _ := yaml.Marshal(c)
	d := c.Clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatal("clone differs")
	}
	d.Instance.Labels["x"] = "y"
	d.Listeners[0].Filters[0].Name = "changed"
	d.Apps[1].APIs[0] = "changed"
	d.Clusters[0].Hosts[0] = "changed:1"
	d.Clusters[0].Tags[0] = "changed"
	d.Clusters[0].HealthCheck.Path = "/changed"
	d.Clusters[0].Outlier.EjectFor = 1
	r := &d.Routes[0]
	r.Split["mesh"] = 99
	r.Fallback[0] = "changed"
	r.Force[0].Devices[0] = "changed"
	r.Force[0].Users[0] = "changed"
	r.Force[1].Header.Value = "changed"
	r.Filters[0].Name = "changed"
	r.Auth["replay"] = false
	r.RateLimit["rate"] = "1/s"
	r.AccessLog["sample"] = 0.5
	d.Switches.MeshOnlyApps[0] = "changed"
	d.Switches.Zones["zone-b"]["mesh"] = 7
	d.Switches.Labels["canary"]["mesh"] = 7
	d.SubstituteDemoHost("x:1")
	after, _ := yaml.Marshal(c)
	if string(orig) != string(after) {
		t.Fatal("mutating the clone changed the original")
	}
}
