package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/netpoll"
)

// timeoutsBackend echoes a request body, and answers /big with size bytes.
func timeoutsBackend(t *testing.T, size int) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			w.Write(make([]byte, size))
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %q", b)
	}))
	t.Cleanup(be.Close)
	return be
}

// startTimeoutsGateway runs a gateway with one http1 listener "web" whose API and path
// routes go to backend, with the listener options given as YAML flow fields.
func startTimeoutsGateway(t *testing.T, engine, backend, listenerOpts string) *Gateway {
	t.Helper()
	return runGateway(t, fmt.Sprintf(`
engine: %s
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1, %s}
clusters:
  - {name: be, hosts: [%q], timeout: 20s}
routes:
  - {api: "*", split: {be: 100}}
  - {path: /, split: {be: 100}}
`, engine, listenerOpts, backend), Options{})
}

// trickle sends head, then body one byte every gap, stopping early once the gateway
// answered or closed (a write fails). It returns when it stopped.
func trickle(c net.Conn, head, body string, gap time.Duration) {
	if _, err := io.WriteString(c, head); err != nil {
		return
	}
	for i := range len(body) {
		time.Sleep(gap)
		if _, err := io.WriteString(c, body[i:i+1]); err != nil {
			return
		}
	}
}

// readClosed reads what follows a response until the connection ends: true when it ended
// (EOF or reset) before the deadline.
func readClosed(c net.Conn, br *bufio.Reader) bool {
	_, err := io.Copy(io.Discard, br)
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestBodyTimeoutAPI: an API body that trickles (or stops) past the listener's
// body_timeout is answered 408 and the connection closed, on both engines; a body that
// comes whole in time is answered 200.
func TestBodyTimeoutAPI(t *testing.T) {
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			be := timeoutsBackend(t, 0)
			g := startTimeoutsGateway(t, engine, be.Listener.Addr().String(), "body_timeout: 1s")
			addr := g.Addr("web").String()
			const body = "0123456789abcdefghij" // 20 bytes: 8 s at one every 400 ms
			head := fmt.Sprintf("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))

			for _, tc := range []struct {
				name string
				send func(c net.Conn)
			}{
				{"trickle", func(c net.Conn) { trickle(c, head, body, 400*time.Millisecond) }},
				{"stop", func(c net.Conn) { io.WriteString(c, head+body[:3]) }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					go tc.send(c)
					c.SetReadDeadline(time.Now().Add(6 * time.Second))
					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("no answer to a late body: %v", err)
					}
					got, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != http.StatusRequestTimeout {
						t.Fatalf("late body answered %d %q, want 408", resp.StatusCode, got)
					}
					if !readClosed(c, br) {
						t.Fatal("connection still open after the 408")
					}
				})
			}

			t.Run("in_time", func(t *testing.T) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				// Pauses shorter than body_timeout, all of the body well within it.
				trickle(c, head, body, 20*time.Millisecond)
				c.SetReadDeadline(time.Now().Add(6 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || !strings.Contains(string(got), body) {
					t.Fatalf("answer %d %q, want 200 with the body", resp.StatusCode, got)
				}
			})
		})
	}
}

// TestBodyTimeoutProxied: a proxied body that trickles past body_timeout. A short one,
// read whole before it is forwarded, has reached no backend yet: 408 and close. A chunked
// one streams to the backend as it comes: the connection is closed, not answered with
// the backend's answer to a body that was let in.
func TestBodyTimeoutProxied(t *testing.T) {
	be := timeoutsBackend(t, 0)
	g := startTimeoutsGateway(t, "epoll", be.Listener.Addr().String(), "body_timeout: 1s")
	const body = "0123456789abcdefghij"
	for _, tt := range []struct {
		name, head, body string
		status           int // 0: closed without an answer
	}{
		{"short", fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body)), body, http.StatusRequestTimeout},
		{"chunked", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", g.Addr("web").String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go trickle(c, tt.head, tt.body, 400*time.Millisecond)
			c.SetReadDeadline(time.Now().Add(6 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			switch {
			case err == nil:
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.status {
					t.Fatalf("late body answered %d %q; want %d", resp.StatusCode, got, tt.status)
				}
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatal("connection neither answered nor closed by the body timeout")
			case tt.status != 0:
				t.Fatalf("closed without the %d: %v", tt.status, err)
			}
			if !readClosed(c, br) {
				t.Fatal("connection still open")
			}
		})
	}
}

// TestWriteStallGateway: a client that asks for a large answer and never reads is closed
// by the listener's write_stall_timeout, counted under reason write_stall.
func TestWriteStallGateway(t *testing.T) {
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			be := timeoutsBackend(t, 64<<20)
			g := startTimeoutsGateway(t, engine, be.Listener.Addr().String(), "write_stall_timeout: 300ms")
			c := dialSmallRcvBuf(t, g.Addr("web").String())
			defer c.Close()
			if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			closed := g.listeners[0].m.closed[netpoll.ReasonWriteStall]
			deadline := time.Now().Add(10 * time.Second)
			for closed.Get() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("a client that does not read was not closed for a write stall")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// dialSmallRcvBuf dials with a small receive buffer so an unread answer backs up into
// the gateway's write queue rather than the kernel's buffers.
func dialSmallRcvBuf(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// Too late for the window scale, but it caps what this socket takes in.
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	return c
}
