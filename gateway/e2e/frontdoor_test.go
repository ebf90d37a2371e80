package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// The front door (issue 4, mmtp.md "Errors", "Limits"): PROXY headers, MMTP frame rules,
// the in-flight cap, timeouts, connection caps and HTTP/1.1 framing, each against a real
// `mgw serve` and under both engines. One gateway per engine carries a listener per
// setting, so one process serves every case.

// frontDoorConfig has one listener per limit under test, so that one timeout never hides
// another: a 1 s frame timeout lives where the idle and handshake timeouts are long.
func frontDoorConfig(engine, demoAddr, spyAddr string) string {
	return fmt.Sprintf(`
engine: %s
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_body_bytes: 4096, max_in_flight: 4}
  - {name: mhello, listen: 127.0.0.1:0, protocol: mmtp, require_hello: true}
  - {name: mproxy, listen: 127.0.0.1:0, protocol: mmtp, proxy_protocol: true, frame_timeout: 1s}
  - {name: midle, listen: 127.0.0.1:0, protocol: mmtp, idle_timeout: 1s}
  - {name: mframe, listen: 127.0.0.1:0, protocol: mmtp, frame_timeout: 1s}
  - {name: mhs, listen: 127.0.0.1:0, protocol: mmtp, handshake_timeout: 1s}
  - {name: mcapft, listen: 127.0.0.1:0, protocol: mmtp, max_in_flight: 2, frame_timeout: 1s}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
  - {name: wproxy, listen: 127.0.0.1:0, protocol: http1, proxy_protocol: true, frame_timeout: 1s}
  - {name: wframe, listen: 127.0.0.1:0, protocol: http1, frame_timeout: 1s}
  - {name: widle, listen: 127.0.0.1:0, protocol: http1, idle_timeout: 1s}
  - {name: wcap, listen: 127.0.0.1:0, protocol: http1, max_conns: 5}
  - {name: whs, listen: 127.0.0.1:0, protocol: http1, handshake_timeout: 1s}
clusters:
  - {name: demo, hosts: [%q], timeout: 5s}
  - {name: spy, hosts: [%q], timeout: 5s}
routes:
  - {api: "*", split: {demo: 100}}
  - {api: "spy.*", split: {spy: 100}}
  - {path: /, split: {demo: 100}}
  - {path: /spy, split: {spy: 100}}
`, engine, demoAddr, spyAddr)
}

// doorSpy is a backend in the test process that counts what reaches it, so a test can show
// that a refused connection sent nothing on.
type doorSpy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func newDoorSpy(t *testing.T) *doorSpy {
	s := &doorSpy{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		if strings.Contains(r.URL.Path, "early") {
			// Answers without reading the body, as a backend refusing an upload does.
			w.Header().Set("Connection", "close")
			io.WriteString(w, "early")
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "spy")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// hits counts the requests whose path held word (tests in parallel use their own word).
func (s *doorSpy) hits(word string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.paths {
		if strings.Contains(p, word) {
			n++
		}
	}
	return n
}

func TestFrontDoor(t *testing.T) {
	t.Parallel() // overlaps the other front-door gateway; the others here run first
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			_, demoAddr := backend(t, "demo")
			sp := newDoorSpy(t)
			g := serve(t, frontDoorConfig(engine, demoAddr, sp.srv.Listener.Addr().String()))
			fd := &frontDoor{g: g, spy: sp}
			// The timeout cases mostly wait, so they run alongside each other.
			t.Run("group", func(t *testing.T) {
				for _, c := range []struct {
					name string
					fn   func(*testing.T, *frontDoor)
				}{
					{"ProxyProtocolMMTP", testProxyMMTP},
					{"ProxyProtocolHTTP", testProxyHTTP},
					{"ProxyProtocolRefused", testProxyRefused},
					{"MMTPPing", testMMTPPing},
					{"MMTPDuplicateStream", testMMTPDuplicateStream},
					{"MMTPMissingOperation", testMMTPMissingOperation},
					{"MMTPHelloBinding", testMMTPHelloBinding},
					{"MMTPFrameTooLarge", testMMTPFrameTooLarge},
					{"MMTPClientResponse", testMMTPClientResponse},
					{"MMTPInFlightCap", testMMTPInFlightCap},
					{"MMTPIdleTimeout", testMMTPIdleTimeout},
					{"MMTPFrameTimeout", testMMTPFrameTimeout},
					{"MMTPHandshakeTimeout", testMMTPHandshakeTimeout},
					{"MMTPSlowAnswerIsNotIdle", testMMTPSlowAnswerIsNotIdle},
					{"MMTPHeldAtCapIsNotAStalledFrame", testMMTPHeldAtCapIsNotAStalledFrame},
					{"HTTPPipelinedBehindSlowAnswer", testHTTPPipelinedBehindSlowAnswer},
					{"ProxyProtocolSplit", testProxySplit},
					{"ProxyProtocolStalled", testProxyStalled},
					{"HTTPSlowHeaders", testHTTPSlowHeaders},
					{"HTTPSlowFirstHeaders", testHTTPSlowFirstHeaders},
					{"HTTPKeepAliveIdle", testHTTPKeepAliveIdle},
					{"HTTPStalledBody", testHTTPStalledBody},
					{"HTTPMaxConns", testHTTPMaxConns},
					{"HTTPPipelined", testHTTPPipelined},
					{"HTTPConnectionClose", testHTTPConnectionClose},
					{"HTTP10", testHTTP10},
					{"HTTPExpectContinue", testHTTPExpectContinue},
					{"HTTPSmuggling", testHTTPSmuggling},
					{"HTTPEarlyAnswerWhileUploading", testHTTPEarlyAnswerWhileUploading},
					{"HTTPExpectContinueTooLarge", testHTTPExpectContinueTooLarge},
					{"MMTPLimitsFromThePrefix", testMMTPLimitsFromThePrefix},
					{"MMTPPingBodyTooLong", testMMTPPingBodyTooLong},
					{"MMTPStreamZero", testMMTPStreamZero},
					{"HTTPHeadThenGet", testHTTPHeadThenGet},
					{"HTTPChunkedBodies", testHTTPChunkedBodies},
					{"HTTPPipelinedBurst", testHTTPPipelinedBurst},
					{"HTTPHeadTooLarge", testHTTPHeadTooLarge},
					{"HTTPPipelinedAfterClose", testHTTPPipelinedAfterClose},
					{"HTTPHandshakeTimeout", testHTTPHandshakeTimeout},
				} {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						c.fn(t, fd)
					})
				}
			})
		})
	}
}

type frontDoor struct {
	g   *gw
	spy *doorSpy
}

// doorConn is a client socket that speaks bytes, for what the client library refuses to
// send (duplicate ids, oversize frames, half frames).
type doorConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
	d  *mmtp.Decoder
}

func dialDoor(t *testing.T, addr string) *doorConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &doorConn{t: t, c: c, br: bufio.NewReader(c), d: mmtp.NewDecoder(nil)}
}

func (r *doorConn) send(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// frame reads the next MMTP frame, failing after d.
func (r *doorConn) frame(d time.Duration) mmtp.Frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	f, err := r.d.ReadFrame(r.c)
	if err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	return f.Clone()
}

// response reads a RESPONSE and returns its stream, status, error code and body.
func (r *doorConn) response(d time.Duration) (uint32, int, string, string) {
	r.t.Helper()
	f := r.frame(d)
	if f.Type != mmtp.TypeResponse {
		r.t.Fatalf("got %s, want RESPONSE", f.Type)
	}
	st, err := mmtp.ResponseStatus(&f)
	if err != nil {
		r.t.Fatalf("RESPONSE status: %v", err)
	}
	code, _ := f.Get("error")
	return f.StreamID, st, string(code), string(f.Body)
}

// goAway expects a GOAWAY with reason within d, then the close; it returns the GOAWAY's
// last-stream-id.
func (r *doorConn) goAway(reason string, d time.Duration) uint32 {
	r.t.Helper()
	f := r.frame(d)
	if f.Type != mmtp.TypeGoAway {
		r.t.Fatalf("got %s, want GOAWAY %s", f.Type, reason)
	}
	if got, _ := f.Get("reason"); string(got) != reason {
		r.t.Fatalf("GOAWAY reason %q, want %q", got, reason)
	}
	last, err := mmtp.LastStreamID(&f)
	if err != nil {
		r.t.Fatalf("GOAWAY last-stream-id: %v", err)
	}
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.d.ReadFrame(r.c); !doorClosed(err) {
		r.t.Fatalf("after GOAWAY: %v, want the connection closed", err)
	}
	return last
}

// closed expects the peer to close within d without sending anything more.
func (r *doorConn) closed(d time.Duration) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(r.br)
	if len(b) > 0 {
		r.t.Fatalf("got %q before the close, want nothing", b)
	}
	if err != nil && !doorClosed(err) {
		r.t.Fatalf("want the connection closed within %s: %v", d, err)
	}
}

// closedErr says whether err is the peer's close (FIN or RST), not a timeout.
func doorClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}

// expectRefusal sends req on a new connection to addr and expects the gateway to answer
// status with a body naming reason, then close.
func expectRefusal(t *testing.T, addr, req string, status int, reason string) {
	t.Helper()
	r := dialDoor(t, addr)
	r.send([]byte(req))
	resp, body := r.httpResponse(10*time.Second, "")
	if resp.StatusCode != status || !strings.Contains(body, reason) || !resp.Close {
		t.Errorf("%q: %d %q close=%v; want %d naming %q, then close", req, resp.StatusCode, body, resp.Close, status, reason)
		return
	}
	r.closed(5 * time.Second)
}

// httpResponse reads one HTTP response with its whole body.
func (r *doorConn) httpResponse(d time.Duration, method string) (*http.Response, string) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading an HTTP response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		r.t.Fatalf("reading an HTTP body: %v", err)
	}
	return resp, string(b)
}

func doorRequest(stream uint32, op string, hdr codec.Header, body string) []byte {
	return mmtp.AppendRequest(nil, stream, op, hdr, []byte(body), false)
}

// forwardedFor is the X-Forwarded-For the demo backend says it got.
func doorXFF(t *testing.T, body string) string {
	t.Helper()
	var d struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("demo description %q: %v", body, err)
	}
	return strings.Join(d.Headers["X-Forwarded-For"], ",")
}
