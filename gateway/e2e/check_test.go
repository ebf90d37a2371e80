package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckAndStartAgree runs `mgw serve -check` and `mgw serve` on configs that are
// wrong in ways each caught by a different layer (config rules, routing rules, a filter's
// own options, the dispatch): both must fail, with the same message, naming the field.
// Before one snapshot builder served both, zone switches summing to 160% passed -check
// and were refused at start.
func TestCheckAndStartAgree(t *testing.T) {
	t.Setenv("E2E_CHECK_SECRET", "s3cret-s3cret-s3cret")
	const head = `
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
apps:
  - {id: wallet, secret_env: E2E_CHECK_SECRET}
clusters:
  - {name: a, hosts: ["127.0.0.1:1"], tags: [mesh]}
  - {name: b, hosts: ["127.0.0.1:2"], tags: [central]}
`
	long := "/" + strings.Repeat("p", 300)
	for _, c := range []struct{ name, cfg, want string }{
		{"zones over 100%", head + `routes:
  - {api: pay.*, split: {a: 50, b: 50}}
switches:
  zones: {zone-b: {mesh: 80, central: 80}}
`, "switches.zones.zone-b: percents add up to 160, over 100"},
		{"labels over 100%", head + `routes:
  - {api: pay.*, split: {a: 50, b: 50}}
switches:
  labels: {canary: {mesh: 60, central: 41}}
`, "switches.labels.canary: percents add up to 101, over 100"},
		{"path route too long", head + `routes:
  - {path: ` + long + `, split: {a: 1}}
`, "routes[0].path: "},
		{"auth on a path route", head + `routes:
  - {path: /, split: {a: 1}, filters: [auth]}
`, `routes[0].filters[0]: "auth" cannot guard path route "/"`},
		{"ratelimit burst too large", head + `routes:
  - {api: pay.*, split: {a: 1}, filters: [ratelimit], ratelimit: {rate: 10/s, burst: 4611686018427387904}}
`, "routes[0].ratelimit.burst: "},
		{"auth skew under a second", head + `routes:
  - {api: pay.*, split: {a: 1}, filters: [auth], auth: {skew: 500ms}}
`, "routes[0].auth.skew: "},
		{"unregistered filter", head + `routes:
  - {api: pay.*, split: {a: 1}, filters: [nosuchfilter]}
`, "routes[0].filters[0]"},
		{"mesh-only app unknown", head + `routes:
  - {api: pay.*, split: {a: 1}}
switches:
  mesh_only_apps: [ghost]
`, `switches.mesh_only_apps[0]: unknown app "ghost"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mgw.yaml")
			if err := os.WriteFile(path, []byte(c.cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) (int, string) {
				p := start(t, "mgw serve", args...)
				code := p.wait(60 * time.Second)
				return code, p.output()
			}
			checkCode, checkOut := run("serve", "-check", "-c", path)
			if checkCode == 0 || !strings.Contains(checkOut, c.want) {
				t.Fatalf("mgw serve -check: exit %d, want non-zero with %q; output:\n%s", checkCode, c.want, checkOut)
			}
			startCode, startOut := run("serve", "-c", path)
			if startCode == 0 || !strings.Contains(startOut, c.want) {
				t.Fatalf("mgw serve: exit %d, want non-zero with %q; output:\n%s", startCode, c.want, startOut)
			}
			if checkOut != startOut {
				t.Fatalf("-check and start disagree:\n-check: %s\nstart:  %s", checkOut, startOut)
			}
		})
	}
}
