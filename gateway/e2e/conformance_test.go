package e2e

// RFC 9110/9112 conformance of the HTTP listener seen from outside, against the real
// `mgw serve` and `mgw backend`: what the gateway writes itself as well as what it
// forwards.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/testnet"
)

// pathOnlyConfig routes /p to the backend and nothing else, so other paths are the
// gateway's own 404.
func pathOnlyConfig(backendAddr string) string {
	return fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: [%q], timeout: 20s}
routes:
  - {api: "demo.*", split: {demo: 100}}
  - {path: /p, split: {demo: 100}}
`, backendAddr)
}

// The gateway's own answers to HEAD (no route, an API call's error, a refused request)
// keep the Content-Length a GET would get and carry no body: one would be read as the
// start of the next response on the connection (RFC 9110 9.3.2, RFC 9112 6.3).
func TestHeadAnswersFromTheGatewayHaveNoBody(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, pathOnlyConfig(baddr))
	web := g.addrs["web"]

	r := dialDoor(t, web)
	r.send([]byte("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		// (Not on /p: an operation no API route takes goes by path, routing.md.)
		"HEAD /q HTTP/1.1\r\nHost: x\r\nOperation-Type: nope.op\r\n\r\n" +
		"GET /p/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	resp, body := r.httpResponse(10*time.Second, "HEAD")
	if resp.StatusCode != 404 || resp.ContentLength <= 0 || body != "" {
		t.Fatalf("HEAD /nope: %d Content-Length %d body %q; want 404 with the GET's length", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = r.httpResponse(10*time.Second, "HEAD")
	if resp.StatusCode != 404 || resp.ContentLength <= 0 || body != "" {
		t.Fatalf("HEAD API call to nope.op: %d Content-Length %d body %q", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = r.httpResponse(10*time.Second, "GET")
	if resp.StatusCode != 200 || describedBody(t, body).Path != "/p/x" {
		t.Fatalf("GET after the HEADs: %d %q", resp.StatusCode, body)
	}

	// A HEAD the codec refuses: the 400 and the close, nothing after the head.
	r = dialDoor(t, web)
	r.send([]byte("HEAD /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
	resp, _ = r.httpResponse(10*time.Second, "HEAD")
	if resp.StatusCode != 400 || resp.ContentLength <= 0 {
		t.Fatalf("refused HEAD: %d Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(r.br); len(rest) > 0 || (err != nil && !doorClosed(err)) {
		t.Fatalf("after the refused HEAD's head: %q, %v; want the close and nothing else", rest, err)
	}

	// Refused in its request line or for its size, before the codec took the method.
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"HEAD / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"\r\nHEAD /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"HEAD / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 17<<10) + "\r\n\r\n", 431},
	} {
		r = dialDoor(t, web)
		r.send([]byte(tc.req))
		resp, _ = r.httpResponse(10*time.Second, "HEAD")
		if resp.StatusCode != tc.status || resp.ContentLength <= 0 {
			t.Fatalf("%.40q: %d Content-Length %d, want %d with the length of its reason", tc.req, resp.StatusCode, resp.ContentLength, tc.status)
		}
		r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if rest, err := io.ReadAll(r.br); len(rest) > 0 || (err != nil && !doorClosed(err)) {
			t.Fatalf("%.40q: after the refusal's head %q, %v; want the close and nothing else", tc.req, rest, err)
		}
	}
}

// Every response carries one Date (RFC 9110 6.6.1): the gateway's own answers, API
// answers and proxied ones, whose backend's Date is kept rather than doubled.
func TestResponsesCarryDate(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, pathOnlyConfig(baddr))

	r := dialDoor(t, g.addrs["web"])
	r.send([]byte("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" +
		"GET /p/x HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
	for _, want := range []int{404, 200, 200, 400} {
		resp, _ := r.httpResponse(10*time.Second, "GET")
		d := resp.Header.Values("Date")
		if resp.StatusCode != want || len(d) != 1 {
			t.Fatalf("got %d with Date %q; want %d with one Date", resp.StatusCode, d, want)
		}
		if at, err := http.ParseTime(d[0]); err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
			t.Errorf("%d: Date %q is not now (%v)", want, d[0], err)
		}
	}
}

// refusals are requests the listener must answer with an error and a close.
var refusals = []struct {
	req    string
	status int
	reason string
}{
	// RFC 9112 6.3 rule 4: no final chunked, no knowable body length.
	{"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, "not chunked"},
	{"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nhello", 400, "not chunked"},
	{"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "gzip"},
	// RFC 9110 4.2.1, 7.2: an http URI's host is never empty.
	{"GET /p HTTP/1.1\r\nHost:\r\n\r\n", 400, "empty Host"},
}

func TestRequestRefusals(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, pathOnlyConfig(baddr))
	for _, tc := range refusals {
		expectRefusal(t, g.addrs["web"], tc.req, tc.status, tc.reason)
	}
}

// A route's max_body_bytes holds for its API calls and for its proxied paths: a declared
// length over it is refused 413 at once, with no 100 Continue first (RFC 9110 10.1.1: the
// head decides it); a chunked API body is refused once it passes the limit; a body within
// it is served.
func TestRouteBodyLimit(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: [%q], timeout: 20s}
routes:
  - {api: "lim.*", split: {demo: 100}, max_body_bytes: 10}
  - {path: /lim, split: {demo: 100}, max_body_bytes: 10}
  - {path: /p, split: {demo: 100}}
`, baddr))
	web := g.addrs["web"]
	for _, req := range []string{
		"POST /api/lim.x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n",
		"POST /lim/x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n",
		"PUT /lim/x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789",
		"POST /api/lim.x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n",
	} {
		expectRefusal(t, web, req, http.StatusRequestEntityTooLarge, "10 byte")
	}
	r := dialDoor(t, web)
	r.send([]byte("POST /lim/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"))
	if resp, body := r.httpResponse(10*time.Second, "POST"); resp.StatusCode != 200 || !strings.Contains(body, `"body_bytes":10`) {
		t.Fatalf("10 bytes on a 10-byte route: %d %q", resp.StatusCode, body)
	}
	// Another route's proxied body is not bounded by it (nor by the listener's API limit).
	r.send([]byte("POST /p/x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n01234567890123456789"))
	if resp, body := r.httpResponse(10*time.Second, "POST"); resp.StatusCode != 200 || !strings.Contains(body, `"body_bytes":20`) {
		t.Fatalf("20 bytes on an unbounded route: %d %q", resp.StatusCode, body)
	}
}

// A forwarded request carries Via with the gateway's entry after the client's (RFC 9110
// 7.6.3), naming the version the gateway received it in, as the backend sees it.
func TestProxiedRequestCarriesVia(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, pathOnlyConfig(baddr))
	r := dialDoor(t, g.addrs["web"])
	for _, tc := range []struct{ version, sent, want string }{
		{"1.1", "", "1.1 mgw"},
		{"1.1", "Via: 1.0 fred\r\nVia: 1.1 p.example\r\n", "1.0 fred, 1.1 p.example, 1.1 mgw"},
		{"1.0", "Connection: keep-alive\r\nVia: 1.1 fred\r\n", "1.1 fred, 1.0 mgw"},
	} {
		r.send([]byte("GET /p/via HTTP/" + tc.version + "\r\nHost: x\r\n" + tc.sent + "\r\n"))
		resp, body := r.httpResponse(10*time.Second, "GET")
		var d struct {
			Headers map[string][]string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(body), &d); resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET /p/via: %d %q %v", resp.StatusCode, body, err)
		}
		if got := d.Headers["Via"]; len(got) != 1 || got[0] != tc.want {
			t.Errorf("sent %q: backend saw Via %q, want %q", tc.sent, got, tc.want)
		}
	}
}

// rawBackend answers every request on every connection with answer, whatever it asked:
// a backend speaking what `mgw backend` (net/http) never would.
func rawBackend(t *testing.T, answer string) string {
	t.Helper()
	return testnet.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	})
}

// A higher HTTP/1.x minor version is served as HTTP/1.1 (RFC 9110 2.5, 6.2), from a
// client and from a backend; another major is 505, and HTTP/1.10 is no version at all.
func TestHigherMinorVersionIsHTTP11(t *testing.T) {
	baddr := rawBackend(t, "HTTP/1.2 200 OK\r\nX-A: a\r\nContent-Length: 2\r\n\r\nok")
	g := serve(t, pathOnlyConfig(baddr))
	r := dialDoor(t, g.addrs["web"])
	r.send([]byte("GET /p/x HTTP/1.2\r\nHost: x\r\n\r\nGET /p/y HTTP/1.9\r\nHost: x\r\n\r\n"))
	for range 2 {
		resp, body := r.httpResponse(10*time.Second, "GET")
		if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || resp.Close || body != "ok" || resp.Header.Get("X-A") != "a" {
			t.Fatalf("got %s %d close=%v X-A=%q %q; want the backend's 200 on a kept HTTP/1.1 connection",
				resp.Proto, resp.StatusCode, resp.Close, resp.Header.Get("X-A"), body)
		}
	}
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET /p HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"GET /p HTTP/0.9\r\nHost: x\r\n\r\n", 505},
		{"GET /p HTTP/1.10\r\nHost: x\r\n\r\n", 400},
	} {
		r := dialDoor(t, g.addrs["web"])
		r.send([]byte(tc.req))
		if resp, body := r.httpResponse(10*time.Second, "GET"); resp.StatusCode != tc.status || !resp.Close {
			t.Errorf("%q: %d %q close=%v; want %d and close", tc.req, resp.StatusCode, body, resp.Close, tc.status)
		}
	}
}

// A backend field with whitespace before its colon is forwarded without it (RFC 9112 5.1:
// a proxy must remove it), not turned into a 502.
func TestBackendFieldNameWhitespaceRemoved(t *testing.T) {
	baddr := rawBackend(t, "HTTP/1.1 200 OK\r\nX-A : a\r\nX-B\t: b\r\nContent-Length : 2\r\n\r\nok")
	g := serve(t, pathOnlyConfig(baddr))
	r := dialDoor(t, g.addrs["web"])
	r.send([]byte("GET /p/x HTTP/1.1\r\nHost: x\r\n\r\n"))
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the head: %v (so far %q)", err, head)
		}
		if line == "\r\n" {
			break
		}
		head = append(head, line)
	}
	got := strings.Join(head, "")
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") || !strings.Contains(got, "\r\nX-A: a\r\n") || !strings.Contains(got, "\r\nX-B: b\r\n") ||
		!strings.Contains(got, "\r\nContent-Length: 2\r\n") || strings.Contains(got, " :") || strings.Contains(got, "\t:") {
		t.Fatalf("forwarded head %q; want the 200 with X-A: a, X-B: b, Content-Length: 2", got)
	}
	if body := make([]byte, 2); func() error { _, err := io.ReadFull(r.br, body); return err }() != nil || string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
}

// OPTIONS and TRACE with Max-Forwards 0 are answered by the gateway as the final
// recipient, not forwarded; with more, they reach the backend with one less (RFC 9110
// 7.6.2). OPTIONS * is about the gateway itself (RFC 9110 9.3.7).
func TestMaxForwards(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, pathOnlyConfig(baddr))
	r := dialDoor(t, g.addrs["web"])
	r.send([]byte("OPTIONS /p/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 3\r\n\r\n"))
	resp, body := r.httpResponse(10*time.Second, "OPTIONS")
	var d struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &d); resp.StatusCode != 200 || err != nil {
		t.Fatalf("OPTIONS with Max-Forwards 3: %d %q %v, want the backend's answer", resp.StatusCode, body, err)
	}
	if got := d.Headers["Max-Forwards"]; len(got) != 1 || got[0] != "2" {
		t.Errorf("backend saw Max-Forwards %q, want 2", got)
	}
	r.send([]byte("OPTIONS /p/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n"))
	resp, body = r.httpResponse(10*time.Second, "OPTIONS")
	if resp.StatusCode != 200 || resp.Header.Get("Allow") == "" || body != "" {
		t.Errorf("OPTIONS with Max-Forwards 0: %d Allow %q body %q, want the gateway's own 200 with Allow",
			resp.StatusCode, resp.Header.Get("Allow"), body)
	}
	// With a body, too (RFC 9110 7.6.2: MUST NOT forward): the body is read and dropped,
	// and the next request on the connection is read from where it ends.
	r.send([]byte("OPTIONS /p/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nContent-Length: 5\r\n\r\nhello" +
		"OPTIONS /p/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	for i := range 2 {
		resp, body = r.httpResponse(10*time.Second, "OPTIONS")
		if resp.StatusCode != 200 || resp.Header.Get("Allow") == "" || body != "" {
			t.Errorf("OPTIONS %d with Max-Forwards 0 and a body: %d Allow %q body %q, want the gateway's own 200 with Allow",
				i, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	// The absolute form with an empty path asks about the server too (RFC 9112 3.2.4).
	for _, req := range []string{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"OPTIONS http://x HTTP/1.1\r\nHost: x\r\n\r\n"} {
		r.send([]byte(req))
		resp, body = r.httpResponse(10*time.Second, "OPTIONS")
		if resp.StatusCode != 200 || resp.Header.Get("Allow") == "" || body != "" {
			t.Errorf("%q: %d Allow %q body %q, want the gateway's own 200 with Allow",
				req, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	r.send([]byte("TRACE /p/mf HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n"))
	resp, _ = r.httpResponse(10*time.Second, "TRACE")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("TRACE with Max-Forwards 0: %d Allow %q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
