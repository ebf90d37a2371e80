package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mgw-project/mgw/netpoll"
)

// holdGateway is a gateway with one HTTP listener whose demo.echo goes to a real backend;
// other operations have no route (404, answered on the reactor worker).
func holdGateway(t *testing.T) (*Gateway, string) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	t.Cleanup(be.Close)
	g := runGateway(t, fmt.Sprintf(`
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: be, hosts: [%q], timeout: 5s}
routes:
  - {api: demo.echo, split: {be: 100}}
`, be.Listener.Addr().String()), Options{})
	return g, g.Addr("web").String()
}

// onlySession returns the session of the gateway's one connection.
func onlySession(t *testing.T, g *Gateway) movable {
	var s movable
	deadline := time.Now().Add(5 * time.Second)
	for s == nil && time.Now().Before(deadline) {
		g.engine.Range(func(c netpoll.Conn) bool { s = sessionOf(c); return false })
		time.Sleep(5 * time.Millisecond)
	}
	if s == nil {
		t.Fatal("no connection")
	}
	return s
}

// TestHoldPipelinedBehindRequestMidBody: a hot upgrade's hold comes while a request's
// body is arriving; the rest of that body comes with a pipelined request behind it. The
// first request is answered (at once on the reactor worker: no route, or by its backend),
// the pipelined one does not start in the old process: the connection turns quiet, its
// bytes pending, so it can move. A rollback (unhold) then serves the pipelined request
// here. Before, a request answered on the worker was followed by the pipelined one, whose
// body then waited with reads paused: never quiet, the upgrade waited its 10 s and kept it.
func TestHoldPipelinedBehindRequestMidBody(t *testing.T) {
	for _, tc := range []struct {
		name, op string
		status   int
	}{
		{"answered by the gateway", "no.such", 404},
		{"answered by the backend", "demo.echo", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, addr := holdGateway(t)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			fmt.Fprintf(conn, "POST /api/%s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello", tc.op)
			s := onlySession(t, g)
			hs := s.(*httpSession)
			eventually(t, 5*time.Second, "the first body arriving", func() (bool, string) {
				return hs.now() == httpBody, fmt.Sprintf("state %d", hs.now())
			})
			s.base().migrating.Store(true)
			s.hold()
			fmt.Fprint(conn, "world"+"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nbody-")
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			r, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(r.Body)
			if r.StatusCode != tc.status {
				t.Fatalf("first request: %d, want %d", r.StatusCode, tc.status)
			}
			// Before the fix the pipelined request began here, its body waiting with reads
			// paused: never quiet.
			eventually(t, 5*time.Second, "quiet after the first answer", func() (bool, string) {
				return s.quiet() && hs.now() == httpIdle, fmt.Sprintf("state %d", hs.now())
			})
			s.unhold()
			s.base().migrating.Store(false)
			fmt.Fprint(conn, "arrives")
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			r, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the pipelined request after the hold was undone: %v", err)
			}
			if b, _ := io.ReadAll(r.Body); r.StatusCode != 200 || string(b) != "body-arrives" {
				t.Fatalf("the pipelined request after the hold was undone: %d %q", r.StatusCode, b)
			}
		})
	}
}
