package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultParsesAndValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if c.Engine != "epoll" || c.Admin.Listen != "127.0.0.1:9901" || !c.Demo.Enabled {
		t.Errorf("engine/admin/demo = %q %q %v", c.Engine, c.Admin.Listen, c.Demo.Enabled)
	}
	if l := c.Listener("mobile"); l == nil || l.Protocol != "mmtp" || l.Listen != "127.0.0.1:9000" {
		t.Errorf("mobile listener = %+v", l)
	}
	if l := c.Listener("web"); l == nil || l.Protocol != "http1" || l.Listen != "127.0.0.1:8080" {
		t.Errorf("web listener = %+v", l)
	}
	cl := c.Cluster("demo")
	if cl == nil || len(cl.Hosts) != 1 || cl.Hosts[0] != DemoHost || cl.Timeout.D() != 10*time.Second {
		t.Fatalf("demo cluster = %+v", cl)
	}
	if cl.HealthCheck == nil || cl.HealthCheck.Path != "/healthz" || cl.HealthCheck.Interval.D() != 5*time.Second {
		t.Errorf("demo health check = %+v", cl.HealthCheck)
	}
	if len(c.Routes) != 2 || c.Routes[0].API != "demo.*" || c.Routes[0].Split["demo"] != 100 || c.Routes[0].Sticky != "device" {
		t.Errorf("routes = %+v", c.Routes)
	}
	if c.Routes[1].Path != "/" || c.Routes[1].Split["demo"] != 100 {
		t.Errorf("path route = %+v", c.Routes[1])
	}
	if len(c.Apps) != 0 {
		t.Errorf("default has apps %+v; the newcomer's curl would need auth", c.Apps)
	}
	// Defaults filled from types.go's comments.
	if l := c.Listener("web"); l.IdleTimeout.D() != 75*time.Second || l.FrameTimeout.D() != 10*time.Second || l.MaxBodyBytes != 4<<20 {
		t.Errorf("web defaults = %+v", l)
	}
	if l := c.Listener("mobile"); l.IdleTimeout.D() != 300*time.Second || l.MaxInFlight != 64 {
		t.Errorf("mobile defaults = %+v", l)
	}
	if l := c.Listener("web"); l.WriteStallTimeout.D() != 30*time.Second || l.BodyTimeout.D() != 60*time.Second {
		t.Errorf("web write_stall_timeout, body_timeout = %v, %v; want 30s, 60s", l.WriteStallTimeout, l.BodyTimeout)
	}
	if l := c.Listener("mobile"); l.WriteStallTimeout.D() != 30*time.Second || l.BodyTimeout != 0 {
		t.Errorf("mobile write_stall_timeout, body_timeout = %v, %v; want 30s, 0", l.WriteStallTimeout, l.BodyTimeout)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.Clusters[0].Hosts[0] = "127.0.0.1:1"
	if b.Clusters[0].Hosts[0] != DemoHost {
		t.Fatal("Default shares state between calls")
	}
	if !strings.Contains(string(DefaultYAML()), "@demo") {
		t.Fatal("DefaultYAML lacks the demo host")
	}
}

func TestSubstituteDemoHost(t *testing.T) {
	orig := Default()
	c := orig.Clone()
	c.SubstituteDemoHost("127.0.0.1:5555")
	if got := c.Cluster("demo").Hosts; len(got) != 1 || got[0] != "127.0.0.1:5555" {
		t.Fatalf("hosts = %v", got)
	}
	if orig.Cluster("demo").Hosts[0] != DemoHost {
		t.Fatal("substitution reached the original through Clone")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
