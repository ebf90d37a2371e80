package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/internal/testnet"
)

// TestProxyFallbackResendsWholeBodies: on a route with retry, a proxied request the
// gateway holds whole (no body, or a short one read before it is forwarded) goes on to
// the fallback cluster when the first one closed without answering, as an API call
// does; a chunked body, streamed to the first cluster as it came, is not resent.
func TestProxyFallbackResendsWholeBodies(t *testing.T) {
	// A backend that takes the request and closes without a word.
	mute := testnet.Serve(t, func(c net.Conn) { c.Read(make([]byte, 4096)) })
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "fallback got %s %q", r.Method, b)
	}))
	t.Cleanup(good.Close)
	g := runGateway(t, fmt.Sprintf(`
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: mute, hosts: [%q], timeout: 5s}
  - {name: good, hosts: [%q], timeout: 5s}
routes:
  - {path: /, split: {mute: 100}, fallback: [good], retry: true}
`, mute, good.Listener.Addr().String()), Options{})
	url := "http://" + g.Addr("web").String() + "/x"

	for _, tt := range []struct {
		name, method, body string
		chunked            bool
		status             int
		want               string
	}{
		{"no body", "GET", "", false, 200, `fallback got GET ""`},
		{"short body", "POST", "hello", false, 200, `fallback got POST "hello"`},
		{"chunked body", "POST", "hello", true, 502, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // no length known: sent chunked
				}
			}
			req, _ := http.NewRequest(tt.method, url, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || tt.want != "" && string(got) != tt.want {
				t.Fatalf("%d %q; want %d %q", resp.StatusCode, got, tt.status, tt.want)
			}
		})
	}
}

// TestAPIWithoutRouteGoesByPath: an HTTP API call whose operation matches no API route is
// routed by path, as docs/routing.md (Matching) says, and forwarded as a plain request;
// with no path route either it is 404 no_route. A `*` route takes every operation.
func TestAPIWithoutRouteGoesByPath(t *testing.T) {
	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s %s", name, r.Method, r.URL.Path, b)
		}))
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	a, api, root := backend("a"), backend("api"), backend("root")
	conf := `
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: a, hosts: [%q], timeout: 5s}
  - {name: api, hosts: [%q], timeout: 5s}
  - {name: root, hosts: [%q], timeout: 5s}
routes:
  - {api: known.op, split: {a: 100}}
  - {path: /api, split: {api: 100}}
%s`
	post := func(t *testing.T, g *Gateway, path, op string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+g.Addr("web").String()+path, strings.NewReader("hi"))
		if op != "" {
			req.Header.Set("Operation-Type", op)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	g := runGateway(t, fmt.Sprintf(conf, a, api, root, "  - {path: /, split: {root: 100}}\n"), Options{})
	for _, tt := range []struct{ path, op, want string }{
		{"/api/known.op", "", "a "}, // an API call: its body goes as the call's
		{"/api/nosuch.op", "", "api POST /api/nosuch.op hi"},
		{"/zzz", "nosuch", "root POST /zzz hi"},
		{"/zzz", "known.op", "a "},
	} {
		if status, body := post(t, g, tt.path, tt.op); status != 200 || !strings.HasPrefix(body, tt.want) {
			t.Errorf("POST %s (Operation-Type %q): %d %q, want 200 %q...", tt.path, tt.op, status, body, tt.want)
		}
	}
	// No path route for /zzz: the operation's 404.
	g = runGateway(t, fmt.Sprintf(conf, a, api, root, ""), Options{})
	if status, body := post(t, g, "/zzz", "nosuch"); status != 404 || !strings.Contains(body, "no route") {
		t.Errorf("POST /zzz (Operation-Type nosuch) with no route for it: %d %q, want 404 no_route", status, body)
	}
	// A `*` API route takes every operation, before any path route.
	g = runGateway(t, fmt.Sprintf(conf, a, api, root, "  - {api: \"*\", split: {root: 100}}\n"), Options{})
	if status, body := post(t, g, "/api/nosuch.op", ""); status != 200 || !strings.HasPrefix(body, "root ") {
		t.Errorf("POST /api/nosuch.op with a * route: %d %q, want the * route's cluster", status, body)
	}
}

// TestListenerAuthWithPathRoutesWarns: auth on an HTTP listener refuses its plain
// requests to path routes (401), which a config with path routes rarely means: the
// gateway says so as it loads the config.
func TestListenerAuthWithPathRoutesWarns(t *testing.T) {
	for _, tt := range []struct {
		name, routes string
		warn         bool
	}{
		{"with a path route", "  - {api: demo.echo, split: {be: 100}}\n  - {path: /p, split: {be: 100}}\n", true},
		{"api routes only", "  - {api: demo.echo, split: {be: 100}}\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			runGateway(t, `
apps:
  - {id: app, secret: s3cret, apis: ["*"]}
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1, filters: [auth]}
clusters:
  - {name: be, hosts: ["127.0.0.1:1"], timeout: 5s}
routes:
`+tt.routes, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			got := strings.Contains(logs.String(), "auth on an HTTP listener refuses its plain requests to path routes") &&
				strings.Contains(logs.String(), "field=listeners[0].filters")
			if got != tt.warn {
				t.Errorf("warning logged %v, want %v:\n%s", got, tt.warn, logs.String())
			}
		})
	}
}
