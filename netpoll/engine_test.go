package netpoll

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestStopAcceptingAndClose: StopAccepting refuses new connections while open ones go on;
// Close then closes each with ReasonShutdown, exactly once, and leaves no goroutines.
func TestStopAcceptingAndClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const conns = 30
		before := runtime.NumGoroutine()
		h := newTestHandler()
		e, err := New(Config{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := e.Listen("t", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs := dialN(t, addr, conns)
		waitFor(t, 5*time.Second, "all open", func() bool { return e.Stats().Open == conns })
		n := 0
		e.Range(func(Conn) bool { n++; return true })
		if n != conns {
			t.Errorf("Range saw %d conns, want %d", n, conns)
		}
		e.StopAccepting()
		if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
			c.Close()
			t.Errorf("dial after StopAccepting succeeded")
		}
		cs[0].Write(frame([]byte("still served")))
		cs[0].SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := readFrame(cs[0]); err != nil || string(got) != "still served" {
			t.Fatalf("open conn after StopAccepting: %q %v", got, err)
		}
		var keep Conn
		e.Range(func(c Conn) bool { keep = c; return false })

		e.Close()
		e.Close()
		st := e.Stats()
		if st.Open != 0 || st.ClosedBy(ReasonShutdown) != conns {
			t.Errorf("after Close: open %d, shutdown closes %d", st.Open, st.ClosedBy(ReasonShutdown))
		}
		if err := keep.Write([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after engine Close = %v", err)
		}
		if _, err := e.Listen("again", "127.0.0.1:0", h, ListenerOptions{}); err == nil {
			t.Errorf("Listen after Close succeeded")
		}
		h.checkCloses(t)
		if len(h.closeN) != conns {
			t.Errorf("%d OnClose, want %d", len(h.closeN), conns)
		}
		waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool {
			return runtime.NumGoroutine() <= before+2
		})
	})
}

// TestIPv6Loopback: listeners and dials work on [::1] where the host has it.
func TestIPv6Loopback(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		ln.Close()
	}
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("v6", "[::1]:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		c.Write(frame([]byte("v6")))
		if got, err := readFrame(c); err != nil || string(got) != "v6" {
			t.Fatalf("echo over v6: %q %v", got, err)
		}
		var ra net.Addr
		var ap netip.AddrPort
		e.Range(func(sc Conn) bool { ra, ap = sc.RemoteAddr(), sc.RemoteAddrPort(); return false })
		if ra.(*net.TCPAddr).IP.To4() != nil || ra.String() != c.LocalAddr().String() {
			t.Errorf("RemoteAddr %v, want %v", ra, c.LocalAddr())
		}
		if ap.String() != c.LocalAddr().String() || !ap.Addr().Is6() {
			t.Errorf("RemoteAddrPort %v, want %v", ap, c.LocalAddr())
		}
	})
}

// TestRemoteAddrPortOfIPv4: an IPv4 peer is a 4-byte address, as the gateway compares
// it with PROXY sources and prints it in X-Forwarded-For.
func TestRemoteAddrPortOfIPv4(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind})
		addr, err := e.Listen("v4", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := dialTCP(t, addr)
		defer c.Close()
		c.Write(frame([]byte("v4")))
		if got, err := readFrame(c); err != nil || string(got) != "v4" {
			t.Fatalf("echo: %q %v", got, err)
		}
		var ap netip.AddrPort
		e.Range(func(sc Conn) bool { ap = sc.RemoteAddrPort(); return false })
		if ap.String() != c.LocalAddr().String() || !ap.Addr().Is4() {
			t.Errorf("RemoteAddrPort %v, want %v as IPv4", ap, c.LocalAddr())
		}
	})
}
