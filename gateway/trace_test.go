package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
)

// TestTraceIDMadeWhenAbsent: an MMTP request without trace-id reaches the backend with
// one the gateway made (mmtp.md, Request headers); a client's own passes through as is.
func TestTraceIDMadeWhenAbsent(t *testing.T) {
	got := make(chan string, 2)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Trace-Id")
		w.Write([]byte("ok"))
	}))
	defer be.Close()
	g := runGateway(t, `
listeners:
  - {name: mobile, listen: "127.0.0.1:0", protocol: mmtp}
clusters:
  - {name: be, hosts: ["`+strings.TrimPrefix(be.URL, "http://")+`"], timeout: 5s}
routes:
  - {api: "t.*", split: {be: 100}}
`, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := dialMMTP(t, g.Addr("mobile").String())
	for _, hdr := range []codec.Header{nil, {{Key: "trace-id", Value: "client-trace-1"}}} {
		r, err := c.Call(ctx, "t.x", hdr, []byte("b"))
		if err != nil || r.Status != 200 {
			t.Fatalf("call: %v %+v", err, r)
		}
	}
	if id := <-got; !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("backend got Trace-Id %q for a request without one, want 32 hex digits the gateway made", id)
	}
	if id := <-got; id != "client-trace-1" {
		t.Errorf("backend got Trace-Id %q, want the client's client-trace-1", id)
	}
}
