package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimal = "listeners:\n  - {name: web, listen: 127.0.0.1:0, protocol: http1}\n"

func TestParseDocumentShapes(t *testing.T) {
	for _, ok := range []string{"---\n" + minimal, minimal + "---\n", minimal + "...\n"} {
		if _, err := Parse([]byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"":                                    "config is empty",
		"# only a comment\n":                  "no YAML document",
		minimal + "---\nengine: x\n":          "more than one YAML document",
		"[]":                                  "config: line 1: cannot unmarshal !!seq into config.Config",
		strings.Repeat("#", MaxConfigBytes+1): "over the limit",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want %q", in, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("engine: [x]\n"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "engine:") {
		t.Errorf("bad file: %v", err)
	}
}

func TestTooManyYAMLErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners:\n")
	for range 300 {
		b.WriteString("  - {name: x, listen: y, protocol: z, max_conns: many}\n")
	}
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "... and 200 more errors") {
		t.Fatalf("%.200v", err)
	}
}

// TestApplyDefaultsKeepsNegatives: a negative written in the file must reach Validate.
func TestApplyDefaultsKeepsNegatives(t *testing.T) {
	c, err := Parse([]byte(minimal + "clusters:\n  - {name: a, hosts: [\"h:1\"], max_conns_per_host: -1, timeout: -2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Clusters[0].MaxConnsPerHost != -1 || c.Clusters[0].Timeout >= 0 {
		t.Fatalf("defaults replaced negatives: %+v", c.Clusters[0])
	}
	c.ApplyDefaults() // idempotent
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "clusters[0].max_conns_per_host: -1 is negative") {
		t.Fatalf("%v", err)
	}
}

// A negative MMTP idle_timeout is its own error, not also one of the handshake_timeout
// the file did not set (it defaults to the idle timeout).
func TestNegativeIdleBlamesOnlyItself(t *testing.T) {
	c, err := Parse([]byte("listeners:\n  - {name: m, listen: \"127.0.0.1:0\", protocol: mmtp, idle_timeout: -5s}\n"))
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "listeners[0].idle_timeout: -5s is negative") ||
		strings.Contains(err.Error(), "handshake_timeout") {
		t.Fatalf("%v; want the idle_timeout error alone", err)
	}
}

// TestFilterOptionsLeftToFilters: options a filter defaults itself are left unset by
// ApplyDefaults and accepted unset by Validate (a ratelimit with only a rate, an auth with
// no skew), so the filter's default is the only one.
func TestFilterOptionsLeftToFilters(t *testing.T) {
	c, err := Parse([]byte(`
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: a, hosts: ["127.0.0.1:1"]}
routes:
  - {api: pay.*, split: {a: 1}, filters: [ratelimit, auth], ratelimit: {rate: 10/s}, auth: {replay: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	r := c.Routes[0]
	if !reflect.DeepEqual(r.RateLimit, FilterOptions{"rate": "10/s"}) || !reflect.DeepEqual(r.Auth, FilterOptions{"replay": true}) {
		t.Fatalf("defaults filled in: ratelimit %+v, auth %+v", r.RateLimit, r.Auth)
	}
}

// TestHandshakeTimeoutDefaults: an MMTP connection that has not spoken yet gets the idle
// timeout (mmtp.md, Limits: 300 s with no complete frame, then GOAWAY idle), or the idle
// timeout it was given; HTTP keeps its short handshake; an explicit value wins.
func TestHandshakeTimeoutDefaults(t *testing.T) {
	c, err := Parse([]byte(`
listeners:
  - {name: m, listen: "127.0.0.1:0", protocol: mmtp}
  - {name: m2, listen: "127.0.0.1:0", protocol: mmtp, idle_timeout: 60s}
  - {name: m3, listen: "127.0.0.1:0", protocol: mmtp, handshake_timeout: 5s}
  - {name: h, listen: "127.0.0.1:0", protocol: http1}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"m": 300 * time.Second, "m2": 60 * time.Second, "m3": 5 * time.Second, "h": 10 * time.Second}
	for _, l := range c.Listeners {
		if got := l.HandshakeTimeout.D(); got != want[l.Name] {
			t.Errorf("listener %s: handshake_timeout %v, want %v", l.Name, got, want[l.Name])
		}
	}
}
