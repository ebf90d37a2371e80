package gateway

import (
	"fmt"
	"io"
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
