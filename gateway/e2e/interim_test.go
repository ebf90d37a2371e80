package e2e

// A backend's interim (1xx) answers on the plain proxy path reach an HTTP/1.1 client
// before the final answer (RFC 9110 15.2: a proxy MUST forward them), and never an
// HTTP/1.0 one; an API call's answer is the final one only.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/testnet"
)

// interimAnswer is a backend's 100 and 103, the 103 with a field its Connection header
// makes hop-by-hop, then the final 200.
const interimAnswer = "HTTP/1.1 100 Continue\r\n\r\n" +
	"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: x-h\r\nX-H: 1\r\n\r\n" +
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// rawBackendFunc answers every request, its body read, by calling answer.
func rawBackendFunc(t *testing.T, answer func(w io.Writer)) string {
	t.Helper()
	return testnet.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			answer(c)
		}
	})
}

// readHead reads one response head off r, its lines without their CRLF.
func readHead(t *testing.T, r *doorConn, d time.Duration) []string {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	var head []string
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a response head: %v (so far %q)", err, head)
		}
		if line == "\r\n" {
			return head
		}
		head = append(head, strings.TrimSuffix(line, "\r\n"))
	}
}

// TestInterimForwarded: for each way the proxy path serves a request (no body or a short
// one: the reactor's ForwardAsync; a long or chunked body: the streaming Forward), an
// HTTP/1.1 client gets the backend's 100 and 103 in order, the 103 with its Link and
// without the fields its Connection header named, then the 200; an HTTP/1.0 client gets
// the 200 alone. Two requests on one connection: the stream stays in step.
func TestInterimForwarded(t *testing.T) {
	baddr := rawBackend(t, interimAnswer)
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			g := serve(t, "engine: "+engine+"\n"+pathOnlyConfig(baddr))
			testInterimForwarded(t, g)
		})
	}
}

func testInterimForwarded(t *testing.T, g *gw) {
	long := strings.Repeat("x", 20<<10)
	for _, tc := range []struct{ name, req string }{
		{"GET", "GET /p/x HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"short body", "POST /p/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"long body", fmt.Sprintf("POST /p/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(long), long)},
		{"chunked body", fmt.Sprintf("POST /p/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(long), long)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialDoor(t, g.addrs["web"])
			for i := range 2 {
				r.send([]byte(tc.req))
				if h := readHead(t, r, 10*time.Second); len(h) != 1 || h[0] != "HTTP/1.1 100 Continue" {
					t.Fatalf("request %d: first head %q, want the backend's 100 Continue alone", i, h)
				}
				h := readHead(t, r, 10*time.Second)
				if len(h) != 2 || h[0] != "HTTP/1.1 103 Early Hints" || h[1] != "Link: </s.css>; rel=preload" {
					t.Fatalf("request %d: second head %q, want the 103 with its Link only (no Connection, no X-H)", i, h)
				}
				resp, body := r.httpResponse(10*time.Second, "GET")
				if resp.StatusCode != 200 || body != "ok" || resp.Close {
					t.Fatalf("request %d: final %d %q close=%v, want the backend's 200 ok, kept", i, resp.StatusCode, body, resp.Close)
				}
			}
		})
		if strings.Contains(tc.req, "chunked") {
			continue // HTTP/1.0 has no chunked coding
		}
		t.Run(tc.name+" HTTP/1.0", func(t *testing.T) {
			r := dialDoor(t, g.addrs["web"])
			req := strings.Replace(tc.req, "HTTP/1.1\r\n", "HTTP/1.0\r\n", 1)
			r.send([]byte(req))
			resp, body := r.httpResponse(10*time.Second, "GET")
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("HTTP/1.0 client got %d %q first, want the 200 ok with no interim before it", resp.StatusCode, body)
			}
		})
	}
}

// TestInterimNotForwardedToAPICalls: an API call is translated, and its answer is the
// backend's final one only.
func TestInterimNotForwardedToAPICalls(t *testing.T) {
	baddr := rawBackend(t, interimAnswer)
	g := serve(t, pathOnlyConfig(baddr))
	r := dialDoor(t, g.addrs["web"])
	r.send([]byte("POST /api/demo.x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
	resp, body := r.httpResponse(10*time.Second, "POST")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("API call: first answer %d %q, want the final 200 ok", resp.StatusCode, body)
	}
}

// TestInterimBeforeTimeout: a 103 that came before the backend went quiet reaches the
// client, then the gateway's 504; the backend's late answer does not follow it.
func TestInterimBeforeTimeout(t *testing.T) {
	baddr := rawBackendFunc(t, func(w io.Writer) {
		io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")
		time.Sleep(1500 * time.Millisecond)
		io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </late.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
	})
	cfg := strings.Replace(pathOnlyConfig(baddr), "timeout: 20s", "timeout: 500ms", 1)
	g := serve(t, cfg)
	long := strings.Repeat("y", 20<<10)
	for _, req := range []string{
		"GET /p/x HTTP/1.1\r\nHost: x\r\n\r\n",
		fmt.Sprintf("POST /p/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(long), long),
	} {
		r := dialDoor(t, g.addrs["web"])
		r.send([]byte(req))
		if h := readHead(t, r, 10*time.Second); len(h) != 2 || h[0] != "HTTP/1.1 103 Early Hints" || h[1] != "Link: </a.css>" {
			t.Fatalf("%.20q: first head %q, want the 103 with Link </a.css>", req, h)
		}
		resp, _ := r.httpResponse(10*time.Second, "GET")
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("%.20q: final %d, want 504", req, resp.StatusCode)
		}
		// The backend's late 103 and 200 come 1 s after the 504: nothing of them may.
		r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if b, err := r.br.ReadByte(); err == nil {
			rest, _ := r.br.Peek(r.br.Buffered())
			t.Fatalf("%.20q: after the 504 came %q", req, append([]byte{b}, rest...))
		}
	}
}
