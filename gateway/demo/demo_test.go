package demo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(NewNamed(name)) // listens on 127.0.0.1:0
	t.Cleanup(s.Close)
	return s
}

func do(t *testing.T, s *httptest.Server, method, path, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != int64(len(b)) {
		t.Errorf("%s %s: Content-Length %d, body %d bytes", method, path, resp.ContentLength, len(b))
	}
	return resp, string(b)
}

func TestEchoAnyPrefix(t *testing.T) {
	s := newServer(t, "b1")
	for _, path := range []string{"/demo.echo", "/v1/demo.echo", "/api/demo.echo"} {
		resp, body := do(t, s, "POST", path, "hi", map[string]string{"Content-Type": "text/x-test", "Content-Encoding": "identity-test"})
		if resp.StatusCode != 200 || body != "hi" {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Content-Type"); got != "text/x-test" {
			t.Errorf("%s: Content-Type %q", path, got)
		}
		if got := resp.Header.Get("Content-Encoding"); got != "identity-test" {
			t.Errorf("%s: Content-Encoding %q", path, got)
		}
		if got := resp.Header.Get("X-Demo-Backend"); got != "b1" {
			t.Errorf("%s: X-Demo-Backend %q", path, got)
		}
	}
}

func TestOperationTypeHeader(t *testing.T) {
	s := newServer(t, "b2")
	resp, body := do(t, s, "POST", "/anything/else", "payload", map[string]string{"Operation-Type": "demo.echo"})
	if resp.StatusCode != 200 || body != "payload" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestEchoEmptyAndLarge(t *testing.T) {
	s := newServer(t, "b")
	if resp, body := do(t, s, "POST", "/demo.echo", "", nil); resp.StatusCode != 200 || body != "" {
		t.Errorf("empty: %d %q", resp.StatusCode, body)
	}
	big := strings.Repeat("abcdefgh", 100000)
	if resp, body := do(t, s, "POST", "/demo.echo", big, nil); resp.StatusCode != 200 || body != big {
		t.Errorf("large: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestSize(t *testing.T) {
	s := newServer(t, "b")
	for _, n := range []int{0, 1, 1024, 32 << 10, 100_001} {
		resp, body := do(t, s, "POST", "/demo.size", strconv.Itoa(n)+"\n", nil)
		if resp.StatusCode != 200 || len(body) != n {
			t.Errorf("size %d: %d, %d bytes", n, resp.StatusCode, len(body))
		}
	}
	for _, bad := range []string{"-1", "x", strconv.Itoa(MaxSize + 1), strings.Repeat("1", 40)} {
		resp, body := do(t, s, "POST", "/demo.size", bad, nil)
		if resp.StatusCode != 400 || !strings.Contains(body, "demo.size") {
			t.Errorf("size %q: %d %q", bad, resp.StatusCode, body)
		}
	}
}

func TestStatus(t *testing.T) {
	s := newServer(t, "b")
	for _, code := range []int{200, 204, 304, 404, 418, 503, 599} {
		resp, _ := do(t, s, "POST", "/demo.status", strconv.Itoa(code), nil)
		if resp.StatusCode != code {
			t.Errorf("status %d: got %d", code, resp.StatusCode)
		}
	}
	for _, bad := range []string{"99", "100", "600", "abc", ""} {
		resp, body := do(t, s, "POST", "/demo.status", bad, nil)
		if resp.StatusCode != 400 || !strings.Contains(body, "demo.status") {
			t.Errorf("status %q: %d %q", bad, resp.StatusCode, body)
		}
	}
}

func TestSleep(t *testing.T) {
	s := newServer(t, "b")
	start := time.Now()
	resp, body := do(t, s, "POST", "/demo.sleep", "30", nil)
	if resp.StatusCode != 200 || body != "30" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Errorf("answered before sleeping")
	}
	// The answer is the body, whatever follows the number, so concurrent sleeps of one
	// length can be told apart.
	for _, in := range []string{"0 first", "0\tsecond call\n", " 1\n", "2 " + strings.Repeat("t", 1000)} {
		if resp, body := do(t, s, "POST", "/demo.sleep", in, nil); resp.StatusCode != 200 || body != in {
			t.Errorf("sleep %q: %d %q, want the body back", in, resp.StatusCode, body)
		}
	}
	for _, bad := range []string{"-1", "60001", "soon", "", "5x", "1 " + strings.Repeat("t", 1100)} {
		if resp, body := do(t, s, "POST", "/demo.sleep", bad, nil); resp.StatusCode != 400 || !strings.HasPrefix(body, "demo.sleep: ") {
			t.Errorf("sleep %.20q: %d %q", bad, resp.StatusCode, body)
		}
	}
}

// TestSleepHonoursCancel checks the handler returns when the client goes away, rather than
// holding its goroutine for the whole sleep.
func TestSleepHonoursCancel(t *testing.T) {
	done := make(chan struct{})
	h := NewNamed("b")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		close(done)
	}))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/demo.sleep", strings.NewReader("60000"))
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	if _, err := s.Client().Do(req); err == nil {
		t.Fatal("request succeeded despite cancel")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler still sleeping after the client went away")
	}
}

func TestUnknownDemoOp(t *testing.T) {
	s := newServer(t, "b")
	resp, body := do(t, s, "POST", "/demo.nope", "", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, "demo.nope") || resp.Header.Get("X-Demo-Backend") != "b" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestHealthz(t *testing.T) {
	s := newServer(t, "hc")
	resp, body := do(t, s, "GET", "/healthz", "", nil)
	if resp.StatusCode != 200 || body != "ok\n" || resp.Header.Get("X-Demo-Backend") != "hc" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestDescribe(t *testing.T) {
	s := newServer(t, "desc")
	resp, body := do(t, s, "GET", "/some/page?q=1", "", map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Custom": "v"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	var d description
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if d.Method != "GET" || d.Path != "/some/page" || d.Query != "q=1" || d.Backend != "desc" {
		t.Errorf("description = %+v", d)
	}
	if got := d.Headers["X-Forwarded-For"]; len(got) != 1 || got[0] != "203.0.113.9" {
		t.Errorf("X-Forwarded-For = %v", got)
	}
	if got := d.Headers["X-Custom"]; len(got) != 1 || got[0] != "v" {
		t.Errorf("X-Custom = %v", got)
	}
	// A POST to a non-demo operation is described too, with its body counted.
	_, body = do(t, s, "POST", "/api/alipay.trade.pay", "12345", nil)
	if err := json.Unmarshal([]byte(body), &d); err != nil || d.BodyBytes != 5 || d.Method != "POST" {
		t.Errorf("POST description = %+v (%v)", d, err)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ln) }()
	resp, err := http.Post("http://"+ln.Addr().String()+"/demo.echo", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "x" || resp.Header.Get("X-Demo-Backend") != DefaultName {
		t.Errorf("%q %v", b, resp.Header)
	}
	ln.Close()
	if err := <-errc; err == nil {
		t.Error("Serve returned nil after the listener closed")
	}
}
