package e2e

// PROXY protocol on the front door: the header's source address becomes the client's,
// and a connection without a valid header is closed unanswered. Run by TestFrontDoor.

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/codec/proxyproto"
)

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
	for i, v := range proxyVersions {
		dst := netip.MustParseAddrPort(fd.g.addrs["wproxy"])
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), 5151)
		if i == 1 {
			// An access layer reached over IPv6 (the header's addresses need not be the
			// socket's family).
			dst = netip.MustParseAddrPort("[2001:db8::1]:443")
			src = netip.MustParseAddrPort("[2001:db8::7]:5151")
		}
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
