package config

import (
	"strings"
	"testing"
)

func TestOverlayReplacesAddsAndKeepsFile(t *testing.T) {
	c, err := Parse([]byte(`
listeners: [{name: a, listen: 127.0.0.1:0, protocol: http1}]
clusters:
  - {name: one, hosts: ["127.0.0.1:1"]}
  - {name: two, hosts: ["127.0.0.1:2"]}
routes:
  - {api: a.b, split: {one: 100}}
  - {api: "*", split: {one: 100}}
fleet: {etcd: {endpoints: ["127.0.0.1:2379"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fleet.Etcd.Prefix != "/mgw/" || c.Fleet.Etcd.DialTimeout.D().String() != "2s" {
		t.Fatalf("fleet defaults: %+v", c.Fleet.Etcd)
	}
	r, err := ParseRoute("a.b", []byte("split: {two: 100}\n"))
	if err != nil || r.API != "a.b" || r.Sticky != DefaultSticky {
		t.Fatalf("route without its key: %+v %v", r, err)
	}
	nr, err := ParseRoute("/web/", []byte(`{"split": {"two": 100}}`))
	if err != nil || nr.Path != "/web/" {
		t.Fatalf("path route from JSON: %+v %v", nr, err)
	}
	cl, err := ParseCluster("three", []byte("hosts: ['127.0.0.1:3']"))
	if err != nil || cl.Policy != DefaultPolicy {
		t.Fatalf("cluster: %+v %v", cl, err)
	}
	sw := Switches{MeshOnlyApps: []string{"x"}}
	o := &Overlay{Routes: map[string]Route{"a.b": r, "/web/": nr}, Clusters: map[string]Cluster{"three": cl}, Switches: &sw}
	n := c.WithOverlay(o)
	if len(c.Routes) != 2 || c.Routes[0].Split["one"] != 100 {
		t.Fatal("WithOverlay changed the file's config")
	}
	if len(n.Routes) != 3 || n.Routes[0].Split["two"] != 100 || n.Routes[2].Path != "/web/" || n.Routes[1].API != "*" {
		t.Fatalf("routes: %+v", n.Routes)
	}
	if len(n.Clusters) != 3 || n.Clusters[2].Name != "three" || n.Switches.MeshOnlyApps[0] != "x" {
		t.Fatalf("clusters %+v switches %+v", n.Clusters, n.Switches)
	}
	// Deleting the entries returns to the file's.
	if back := c.WithOverlay(&Overlay{}); len(back.Routes) != 2 || back.Routes[0].Split["one"] != 100 {
		t.Fatalf("empty overlay: %+v", back.Routes)
	}
}

func TestParseEntryRefusals(t *testing.T) {
	for _, tc := range []struct{ key, data, want string }{
		{"a.b", "api: c.d\nsplit: {x: 1}", `route names "c.d" but is stored under "a.b"`},
		{"a.b", "splitt: {x: 1}", `splitt: unknown field "splitt"`},
		{"a.b", "   ", "empty value"},
		{"a.b", "split: [1", "yaml"},
	} {
		_, err := ParseRoute(tc.key, []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRoute(%q, %q) = %v, want %q", tc.key, tc.data, err, tc.want)
		}
	}
	if _, err := ParseCluster("a", []byte("name: b\nhosts: ['127.0.0.1:1']")); err == nil {
		t.Error("a cluster stored under another name was accepted")
	}
	if _, err := ParseSwitches([]byte("zones: 3")); err == nil {
		t.Error("switches of the wrong shape were accepted")
	}
}

// FuzzParseFleetEntry: an etcd value is operator input read by every instance; no value
// may panic the parsers, and a route accepted is stored under its own key.
func FuzzParseFleetEntry(f *testing.F) {
	for _, s := range []string{"split: {a: 100}", "api: x.y\nsplit: {a: 1}", `{"path": "/p/"}`, "hosts: ['127.0.0.1:1']",
		"zones: {z: {mesh: 5}}", "- 1", "a: &x [*x]", ""} {
		f.Add("x.y", []byte(s))
	}
	f.Fuzz(func(t *testing.T, key string, data []byte) {
		if r, err := ParseRoute(key, data); err == nil && RouteKey(&r) != key {
			t.Fatalf("route %q accepted under key %q", RouteKey(&r), key)
		}
		ParseCluster(key, data)
		ParseSwitches(data)
	})
}
