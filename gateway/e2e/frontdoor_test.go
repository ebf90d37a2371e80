package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/codec/proxyproto"
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
					{"HTTPKeepAliveIdle", testHTTPKeepAliveIdle},
					{"HTTPStalledBody", testHTTPStalledBody},
					{"HTTPMaxConns", testHTTPMaxConns},
					{"HTTPPipelined", testHTTPPipelined},
					{"HTTPConnectionClose", testHTTPConnectionClose},
					{"HTTP10", testHTTP10},
					{"HTTPExpectContinue", testHTTPExpectContinue},
					{"HTTPSmuggling", testHTTPSmuggling},
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

// ---- raw connections ----

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

// ---- PROXY protocol ----

var proxyVersions = []struct {
	name string
	enc  func(src, dst netip.AddrPort) []byte
}{
	{"v1", func(s, d netip.AddrPort) []byte { return proxyproto.AppendV1(nil, s, d) }},
	{"v2", func(s, d netip.AddrPort) []byte { return proxyproto.AppendV2(nil, s, d) }},
}

func testProxyMMTP(t *testing.T, fd *frontDoor) {
	dst := netip.MustParseAddrPort(fd.g.addrs["mproxy"])
	for i, v := range proxyVersions {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}), 4242)
		c := fd.g.mmtpClient(t, "mproxy", client.Options{ProxyHeader: v.enc(src, dst)})
		// A non-demo operation: the demo backend describes the call, headers included.
		resp := call(t, c, "who.am.i", nil)
		if resp.Status != 200 {
			t.Fatalf("%s: %d %q", v.name, resp.Status, resp.Body)
		}
		if xff := doorXFF(t, string(resp.Body)); xff != src.Addr().String() {
			t.Fatalf("%s: backend saw X-Forwarded-For %q, want %s", v.name, xff, src.Addr())
		}
	}
	// Without PROXY protocol the socket's own address is the client's.
	c := fd.g.mmtpClient(t, "mobile", client.Options{})
	if xff := doorXFF(t, string(call(t, c, "who.am.i", nil).Body)); xff != "127.0.0.1" {
		t.Fatalf("plain listener: X-Forwarded-For %q, want 127.0.0.1", xff)
	}
}

func testProxyHTTP(t *testing.T, fd *frontDoor) {
	dst := netip.MustParseAddrPort(fd.g.addrs["wproxy"])
	for i, v := range proxyVersions {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), 5151)
		// A plain proxied GET, then an API call, on one keep-alive connection.
		r := dialDoor(t, fd.g.addrs["wproxy"])
		r.send(append(v.enc(src, dst), "GET /who HTTP/1.1\r\nHost: x\r\n\r\n"+
			"POST /api/who.am.i HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"...))
		for _, what := range []string{"GET /who", "POST /api/who.am.i"} {
			resp, body := r.httpResponse(10*time.Second, "")
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d %q", v.name, what, resp.StatusCode, body)
			}
			if xff := doorXFF(t, body); xff != src.Addr().String() {
				t.Fatalf("%s %s: backend saw X-Forwarded-For %q, want %s", v.name, what, xff, src.Addr())
			}
		}
	}
}

// testProxyRefused: without a valid PROXY header the connection is closed unanswered and
// nothing reaches the backend. The spy backend would count anything that did.
func testProxyRefused(t *testing.T, fd *frontDoor) {
	dst := netip.MustParseAddrPort(fd.g.addrs["wproxy"])
	src := netip.MustParseAddrPort("192.0.2.1:1000")
	// A positive control first: the spy is reachable through the PROXY listener.
	r := dialDoor(t, fd.g.addrs["wproxy"])
	r.send(append(proxyproto.AppendV1(nil, src, dst), "GET /spy/refused HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || body != "spy" {
		t.Fatalf("control request to the spy: %d %q", resp.StatusCode, body)
	}
	if n := fd.spy.hits("refused"); n != 1 {
		t.Fatalf("the spy counted %d hits for the control request, want 1", n)
	}
	httpReq := "GET /spy/refused HTTP/1.1\r\nHost: x\r\n\r\n"
	mmtpReq := string(doorRequest(1, "spy.refused", nil, "x"))
	for _, c := range []struct{ name, listener, bytes string }{
		{"http without header", "wproxy", httpReq},
		{"http bad v1", "wproxy", "PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n" + httpReq},
		{"http bad v2", "wproxy", string(proxyproto.AppendV2(nil, src, dst)[:12]) + "\x99\x11\x00\x0c" + strings.Repeat("\x00", 12) + httpReq},
		{"mmtp without header", "mproxy", mmtpReq},
		{"mmtp bad v1", "mproxy", "PROXY UDP4 1.2.3.4 127.0.0.1 1 2\r\n" + mmtpReq},
	} {
		r := dialDoor(t, fd.g.addrs[c.listener])
		r.send([]byte(c.bytes))
		r.closed(5 * time.Second)
	}
	if n := fd.spy.hits("refused"); n != 1 {
		t.Fatalf("refused connections reached the backend: %d hits, want only the control's", n)
	}
}

// testProxyStalled: half a PROXY header and then silence is closed by the frame timeout
// without a word of MMTP or HTTP: the peer (an access layer) has not reached the protocol.
func testProxyStalled(t *testing.T, fd *frontDoor) {
	for _, l := range []string{"mproxy", "wproxy"} {
		r := dialDoor(t, fd.g.addrs[l])
		r.send([]byte("PROXY TCP4 192.0.2"))
		start := time.Now()
		r.closed(6 * time.Second)
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("%s: closed after %s, before the 1s frame timeout", l, d)
		}
	}
}

// ---- MMTP frame rules ----

func testMMTPPing(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	for _, body := range []string{"12345678", "", "ab"} {
		r.send(mmtp.AppendPing(nil, []byte(body)))
		f := r.frame(5 * time.Second)
		if f.Type != mmtp.TypePong || string(f.Body) != body {
			t.Fatalf("PING %q answered by %s %q", body, f.Type, f.Body)
		}
	}
}

func testMMTPDuplicateStream(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(append(doorRequest(7, "demo.sleep", nil, "400"), doorRequest(7, "demo.echo", nil, "dup")...))
	stream, st, code, _ := r.response(5 * time.Second)
	if stream != 7 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("duplicate: stream %d status %d error %q, want 7 400 %s", stream, st, code, codec.ErrBadRequest)
	}
	stream, st, _, body := r.response(5 * time.Second)
	if stream != 7 || st != 200 || !strings.Contains(body, "slept 400") {
		t.Fatalf("original: stream %d status %d %q, want the sleep answered", stream, st, body)
	}
	// The id is free again once answered.
	r.send(doorRequest(7, "demo.echo", nil, "again"))
	if stream, st, _, body := r.response(5 * time.Second); stream != 7 || st != 200 || body != "again" {
		t.Fatalf("reused id: %d %d %q", stream, st, body)
	}
}

func testMMTPMissingOperation(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 3, codec.Header{{Key: "x-a", Value: "b"}}, []byte("x")))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 3 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("no operation-type: %d %d %q", stream, st, code)
	}
	r.send(mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 5, codec.Header{{Key: "operation-type", Value: ""}}, nil))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 5 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("empty operation-type: %d %d %q", stream, st, code)
	}
	// The connection goes on.
	r.send(doorRequest(9, "demo.echo", nil, "ok"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "ok" {
		t.Fatalf("after the 400s: %d %q", st, body)
	}
}

func testMMTPHelloBinding(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mhello"])
	r.send(doorRequest(1, "demo.echo", nil, "early"))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 1 || st != 401 || code != codec.ErrUnauthorized {
		t.Fatalf("REQUEST before HELLO: %d %d %q, want 1 401 unauthorized", stream, st, code)
	}
	r.send(mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 2, codec.Header{{Key: "app-id", Value: "app1"}, {Key: "device-id", Value: "dev1"}}, nil))
	if stream, st, _, body := r.response(5 * time.Second); stream != 2 || st != 200 {
		t.Fatalf("HELLO: %d %d %q", stream, st, body)
	}
	r.send(doorRequest(3, "demo.echo", codec.Header{{Key: "device-id", Value: "dev2"}}, "other"))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 3 || st != 401 || code != codec.ErrUnauthorized {
		t.Fatalf("another device-id: %d %d %q, want 3 401 unauthorized", stream, st, code)
	}
	r.send(doorRequest(4, "demo.echo", codec.Header{{Key: "app-id", Value: "app2"}}, "other"))
	if _, st, _, _ := r.response(5 * time.Second); st != 401 {
		t.Fatalf("another app-id: %d, want 401", st)
	}
	r.send(doorRequest(5, "demo.echo", codec.Header{{Key: "device-id", Value: "dev1"}}, "same"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "same" {
		t.Fatalf("the HELLO's device-id: %d %q", st, body)
	}
	r.send(doorRequest(6, "demo.echo", nil, "bound"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "bound" {
		t.Fatalf("no device-id after HELLO: %d %q", st, body)
	}
}

func testMMTPFrameTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	// At the limit passes; one byte over ends the connection.
	r.send(doorRequest(1, "demo.echo", nil, strings.Repeat("a", 4096)))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || len(body) != 4096 {
		t.Fatalf("body at the limit: %d, %d bytes", st, len(body))
	}
	r.send(doorRequest(3, "demo.echo", nil, strings.Repeat("a", 4097)))
	if last := r.goAway(mmtp.ReasonFrameTooLarge, 5*time.Second); last != 1 {
		t.Fatalf("GOAWAY last-stream-id %d, want 1 (the highest accepted)", last)
	}
}

// testMMTPStreamZero: a REQUEST must have a non-zero stream id.
func testMMTPStreamZero(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(doorRequest(0, "demo.echo", nil, "x"))
	if last := r.goAway(mmtp.ReasonProtocolError, 5*time.Second); last != 0 {
		t.Fatalf("GOAWAY last-stream-id %d, want 0 (none accepted)", last)
	}
}

// testMMTPLimitsFromThePrefix: a frame declaring a body over the limit, or a header block
// with too many entries, is refused as soon as that is known, not once it all arrived (the
// listener's frame timeout is the default 30 s, far beyond the wait here).
func testMMTPLimitsFromThePrefix(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	big := doorRequest(1, "demo.echo", nil, strings.Repeat("b", 1<<20))
	r.send(big[:64])
	r.goAway(mmtp.ReasonFrameTooLarge, 3*time.Second)

	var hdr codec.Header
	for i := 0; i < 65; i++ {
		hdr = append(hdr, codec.Field{Key: fmt.Sprintf("x-%d", i), Value: "v"})
	}
	r = dialDoor(t, fd.g.addrs["mobile"])
	r.send(doorRequest(1, "demo.echo", hdr, "x"))
	r.goAway(mmtp.ReasonFrameTooLarge, 3*time.Second)
}

// testMMTPPingBodyTooLong: a PING body over 8 bytes is a protocol error (mmtp.md). The
// encoder cuts PING bodies, so the frame is built as a REQUEST on stream 0 and retyped.
func testMMTPPingBodyTooLong(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	b := mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 0, nil, []byte("123456789"))
	b[3] = byte(mmtp.TypePing)
	r.send(b)
	r.goAway(mmtp.ReasonProtocolError, 3*time.Second)
}

func testMMTPClientResponse(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(mmtp.AppendResponse(nil, 1, &codec.Response{Status: 200}))
	r.goAway(mmtp.ReasonProtocolError, 5*time.Second)
}

// testMMTPInFlightCap: 12 requests of 300 ms in one write on a listener with
// max_in_flight 4. With at most 4 in flight, by time T at most 4*floor(T/300ms) can be
// answered, so the k-th answer cannot come before ceil(k/4)*300ms; without the cap all 12
// would come at about 300 ms.
func testMMTPInFlightCap(t *testing.T, fd *frontDoor) {
	const n, limit, sleep = 12, 4, 300 * time.Millisecond
	r := dialDoor(t, fd.g.addrs["mobile"])
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, doorRequest(uint32(2*i+1), "demo.sleep", nil, "300")...)
	}
	start := time.Now()
	r.send(batch)
	seen := map[uint32]bool{}
	for k := 1; k <= n; k++ {
		stream, st, _, body := r.response(20 * time.Second)
		at := time.Since(start)
		if st != 200 || !strings.Contains(body, "slept 300") || seen[stream] {
			t.Fatalf("answer %d: stream %d status %d %q", k, stream, st, body)
		}
		seen[stream] = true
		if earliest := time.Duration((k+limit-1)/limit) * sleep; at < earliest {
			t.Fatalf("answer %d came after %s, before %s: more than %d were in flight", k, at, earliest, limit)
		}
	}
}

// ---- timeouts (the reactor's timing wheel ticks once a second: allow slack) ----

func testMMTPIdleTimeout(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["midle"])
	r.send(doorRequest(1, "demo.echo", nil, "x"))
	if _, st, _, _ := r.response(5 * time.Second); st != 200 {
		t.Fatalf("request: %d", st)
	}
	start := time.Now()
	r.goAway(mmtp.ReasonIdle, 5*time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("idle GOAWAY after %s, before the 1s idle timeout", d)
	}
}

func testMMTPFrameTimeout(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mframe"])
	r.send(mmtp.AppendPing(nil, []byte("p")))
	if f := r.frame(5 * time.Second); f.Type != mmtp.TypePong {
		t.Fatalf("got %s, want PONG", f.Type)
	}
	req := doorRequest(1, "demo.echo", nil, "half a frame")
	r.send(req[:len(req)/2])
	start := time.Now()
	r.goAway(mmtp.ReasonTimeout, 5*time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("timeout GOAWAY after %s, before the 1s frame timeout", d)
	}
}

func testMMTPHandshakeTimeout(t *testing.T, fd *frontDoor) {
	silent := dialDoor(t, fd.g.addrs["mhs"])
	// A connection that spoke lives under the (long) idle timeout instead.
	spoke := dialDoor(t, fd.g.addrs["mhs"])
	spoke.send(mmtp.AppendPing(nil, []byte("1")))
	if f := spoke.frame(5 * time.Second); f.Type != mmtp.TypePong {
		t.Fatalf("got %s, want PONG", f.Type)
	}
	start := time.Now()
	silent.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := silent.d.ReadFrame(silent.c)
		if err == nil {
			continue // a GOAWAY may precede the close
		}
		if !doorClosed(err) {
			t.Fatalf("silent connection: %v, want it closed by the handshake timeout", err)
		}
		break
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s handshake timeout", d)
	}
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	spoke.send(mmtp.AppendPing(nil, []byte("2")))
	if f := spoke.frame(5 * time.Second); f.Type != mmtp.TypePong || string(f.Body) != "2" {
		t.Fatalf("connection that spoke: got %s %q, want PONG 2", f.Type, f.Body)
	}
}

// testMMTPSlowAnswerIsNotIdle: a request whose answer takes longer than the idle timeout
// is still answered. A GOAWAY idle before it is allowed (mmtp.md: every accepted request
// in flight is still answered), a close without the answer is not.
func testMMTPSlowAnswerIsNotIdle(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["midle"])
	r.send(doorRequest(1, "demo.sleep", nil, "2500"))
	for {
		f := r.frame(10 * time.Second)
		if f.Type == mmtp.TypeGoAway {
			if last, err := mmtp.LastStreamID(&f); err != nil || last < 1 {
				t.Fatalf("GOAWAY while stream 1 is in flight: last-stream-id %d %v", last, err)
			}
			continue
		}
		if f.Type != mmtp.TypeResponse || f.StreamID != 1 {
			t.Fatalf("got %s on stream %d, want the RESPONSE to 1", f.Type, f.StreamID)
		}
		if st, _ := mmtp.ResponseStatus(&f); st != 200 {
			t.Fatalf("slow answer: status %d %q", st, f.Body)
		}
		return
	}
}

// testMMTPHeldAtCapIsNotAStalledFrame: whole frames held back at the in-flight cap are
// not a frame begun and stalled, so the frame timeout must not end the connection while
// the requests ahead of them take longer than it.
func testMMTPHeldAtCapIsNotAStalledFrame(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mcapft"])
	var batch []byte
	for i := uint32(1); i <= 4; i++ {
		batch = append(batch, doorRequest(i, "demo.sleep", nil, "2500")...)
	}
	r.send(batch)
	for k := 0; k < 4; k++ {
		f := r.frame(15 * time.Second)
		if f.Type != mmtp.TypeResponse {
			reason, _ := f.Get("reason")
			t.Fatalf("answer %d: got %s %s, want RESPONSE", k, f.Type, reason)
		}
		if st, _ := mmtp.ResponseStatus(&f); st != 200 {
			t.Fatalf("answer %d: status %d %q", k, st, f.Body)
		}
	}
}

// testHTTPPipelinedBehindSlowAnswer: a pipelined request waiting behind a slow answer is
// not a slow head; the frame timeout must not answer 408 into the middle of it.
func testHTTPPipelinedBehindSlowAnswer(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["wframe"])
	r.send([]byte("POST /api/demo.sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n2500" +
		"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, "slept 2500") {
		t.Fatalf("slow first answer: %d %q", resp.StatusCode, body)
	}
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/behind"`) {
		t.Fatalf("pipelined second answer: %d %q", resp.StatusCode, body)
	}
}

// testProxySplit: a PROXY header that arrives in pieces is waited for, not refused.
func testProxySplit(t *testing.T, fd *frontDoor) {
	src := netip.MustParseAddrPort("203.0.113.99:9999")
	for _, v := range proxyVersions {
		dst := netip.MustParseAddrPort(fd.g.addrs["wproxy"])
		hdr := v.enc(src, dst)
		r := dialDoor(t, fd.g.addrs["wproxy"])
		r.send(hdr[:7])
		time.Sleep(100 * time.Millisecond)
		r.send(hdr[7:])
		time.Sleep(100 * time.Millisecond)
		r.send([]byte("GET /split HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, body := r.httpResponse(10*time.Second, "")
		if resp.StatusCode != 200 || doorXFF(t, body) != "203.0.113.99" {
			t.Fatalf("http %s in pieces: %d %q", v.name, resp.StatusCode, body)
		}
		dst = netip.MustParseAddrPort(fd.g.addrs["mproxy"])
		hdr = v.enc(src, dst)
		r = dialDoor(t, fd.g.addrs["mproxy"])
		r.send(hdr[:10])
		time.Sleep(100 * time.Millisecond)
		r.send(append(hdr[10:], doorRequest(1, "who.split", nil, "")...))
		if _, st, _, body := r.response(10 * time.Second); st != 200 || doorXFF(t, body) != "203.0.113.99" {
			t.Fatalf("mmtp %s in pieces: %d %q", v.name, st, body)
		}
	}
}

func testHTTPSlowHeaders(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["wframe"])
	r.send([]byte("GET /slow HTTP/1.1\r\nHost: x\r\nX-Half: "))
	start := time.Now()
	resp, _ := r.httpResponse(5*time.Second, "")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow headers: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("408 after %s, before the 1s frame timeout", d)
	}
	r.closed(5 * time.Second)
}

// testHTTPStalledBody: an API body that stops arriving is answered 408 once the
// connection was idle for idle_timeout, then closed.
func testHTTPStalledBody(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["widle"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
	start := time.Now()
	if resp, _ := r.httpResponse(6*time.Second, ""); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("408 after %s, before the 1s idle timeout", d)
	}
	r.closed(3 * time.Second)
}

func testHTTPKeepAliveIdle(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["widle"])
	r.send([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive request: %d close=%v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	r.closed(5 * time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s idle timeout", d)
	}
}

// ---- connection cap ----

func testHTTPMaxConns(t *testing.T, fd *frontDoor) {
	addr := fd.g.addrs["wcap"]
	var conns []*doorConn
	for i := 0; i < 5; i++ {
		r := dialDoor(t, addr)
		r.send([]byte("GET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
		if resp, _ := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
		conns = append(conns, r)
	}
	// The sixth connects (the kernel's backlog holds it) but is not served.
	sixth := dialDoor(t, addr)
	sixth.send([]byte("GET /sixth HTTP/1.1\r\nHost: x\r\n\r\n"))
	sixth.c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if b, err := sixth.br.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("sixth connection answered over max_conns 5: %q %v", b, err)
	}
	closedAt := time.Now()
	conns[0].c.Close()
	resp, body := sixth.httpResponse(10*time.Second, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "/sixth") {
		t.Fatalf("sixth connection after one closed: %d %q", resp.StatusCode, body)
	}
	t.Logf("sixth served %s after a slot freed", time.Since(closedAt))
}

// ---- HTTP/1.1 framing ----

func testHTTPPipelined(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	// The slow one first: answers must still come in request order.
	r.send([]byte("POST /api/demo.sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n200" +
		"GET /p2 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree" +
		"GET /p4 HTTP/1.1\r\nHost: x\r\n\r\n"))
	check := func(what string, ok func(string) bool) {
		t.Helper()
		resp, body := r.httpResponse(10*time.Second, "")
		if resp.StatusCode != 200 || !ok(body) {
			t.Fatalf("pipelined %s: %d %q", what, resp.StatusCode, body)
		}
	}
	check("sleep", func(b string) bool { return strings.Contains(b, "slept 200") })
	check("/p2", func(b string) bool { return strings.Contains(b, `"/p2"`) })
	check("echo", func(b string) bool { return b == "three" })
	check("/p4", func(b string) bool { return strings.Contains(b, `"/p4"`) })
}

func testHTTPConnectionClose(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close: %d close=%v", resp.StatusCode, resp.Close)
	}
	r.closed(3 * time.Second)
	// The API path too.
	r = dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "hi" || !resp.Close {
		t.Fatalf("API Connection: close: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	r.closed(3 * time.Second)
}

func testHTTP10(t *testing.T, fd *frontDoor) {
	for _, req := range []string{
		"GET /old HTTP/1.0\r\n\r\n",
		"POST /api/demo.echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nold",
	} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte(req))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body == "" {
			t.Fatalf("HTTP/1.0 %q: %d %q", req, resp.StatusCode, body)
		}
		r.closed(3 * time.Second)
	}
}

func testHTTPExpectContinue(t *testing.T, fd *frontDoor) {
	for _, path := range []string{"/api/demo.echo", "/upload"} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("%s: first line %q %v, want 100 Continue", path, line, err)
		}
		if blank, err := r.br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("%s: after 100: %q %v", path, blank, err)
		}
		r.send([]byte("hello"))
		resp, body := r.httpResponse(5*time.Second, "")
		if resp.StatusCode != 200 || (path == "/api/demo.echo" && body != "hello") ||
			(path == "/upload" && !bytes.Contains([]byte(body), []byte(`"body_bytes":5`)) && !strings.Contains(body, `"body_bytes": 5`)) {
			t.Fatalf("%s after 100: %d %q", path, resp.StatusCode, body)
		}
	}
}

// testHTTPExpectContinueTooLarge: an API body declared over the limit is refused before
// the client is invited to send it.
func testHTTPExpectContinueTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared 5 MB API body with Expect: %d, want 413 (and no 100 first)", resp.StatusCode)
	}
	r.closed(3 * time.Second)
}

func testHTTPHeadTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("h", 20<<10) + "\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("20 KiB head over the 16 KiB default: %d, want 431", resp.StatusCode)
	}
	r.closed(3 * time.Second)
}

// testHTTPPipelinedAfterClose: a request pipelined behind `Connection: close` is not
// served; an HTTP/1.0 client asking for keep-alive gets it.
func testHTTPPipelinedAfterClose(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nextra"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/last"`) {
		t.Fatalf("request with Connection: close: %d %q", resp.StatusCode, body)
	}
	r.closed(3 * time.Second)

	r = dialDoor(t, fd.g.addrs["web"])
	for i := 0; i < 2; i++ {
		r.send([]byte("POST /api/demo.echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nkeep"))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "keep" || resp.Close {
			t.Fatalf("HTTP/1.0 keep-alive request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
}

func testHTTPHandshakeTimeout(t *testing.T, fd *frontDoor) {
	silent := dialDoor(t, fd.g.addrs["whs"])
	start := time.Now()
	silent.closed(5 * time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s handshake timeout", d)
	}
}

// testHTTPHeadThenGet: the answer to HEAD carries no body, or the pipelined GET behind
// it would be misread.
func testHTTPHeadThenGet(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, body := r.httpResponse(5*time.Second, http.MethodHead); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/g"`) {
		t.Fatalf("GET after HEAD: %d %q", resp.StatusCode, body)
	}
}

func testHTTPChunkedBodies(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "hello world" {
		t.Fatalf("chunked API body: %d %q", resp.StatusCode, body)
	}
	resp, body := r.httpResponse(5*time.Second, "")
	if resp.StatusCode != 200 || !strings.Contains(strings.ReplaceAll(body, " ", ""), `"body_bytes":7`) {
		t.Fatalf("chunked proxied body: %d %q", resp.StatusCode, body)
	}
}

// testHTTPPipelinedBurst: many requests in one write, API and proxied mixed, answered in
// order (each answer resumes reading and the held bytes are handed back).
func testHTTPPipelinedBurst(t *testing.T, fd *frontDoor) {
	const n = 40
	r := dialDoor(t, fd.g.addrs["web"])
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			body := fmt.Sprintf("n%d", i)
			fmt.Fprintf(&b, "POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		} else {
			fmt.Fprintf(&b, "GET /burst/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
	}
	r.send([]byte(b.String()))
	for i := 0; i < n; i++ {
		resp, body := r.httpResponse(10*time.Second, "")
		want := fmt.Sprintf("n%d", i)
		ok := body == want
		if i%2 == 1 {
			want = fmt.Sprintf(`"/burst/%d"`, i)
			ok = strings.Contains(body, want)
		}
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("answer %d: %d %q, want %s", i, resp.StatusCode, body, want)
		}
	}
}

func testHTTPSmuggling(t *testing.T, fd *frontDoor) {
	for _, req := range []string{
		"POST /spy/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /spy/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/spy.smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"POST /spy/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte(req))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("%q: %d close=%v %q, want 400 and close", req, resp.StatusCode, resp.Close, body)
		}
		r.closed(3 * time.Second)
	}
	if n := fd.spy.hits("smuggl"); n != 0 {
		t.Fatalf("a smuggling attempt reached the backend (%d hits)", n)
	}
}
