//go:build linux

package netpoll

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// resolveTCP parses "host:port" into a family and a sockaddr for bind/connect. An empty or
// unspecified IPv6 host binds dual-stack.
func resolveTCP(addr string) (family int, sa unix.Sockaddr, err error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0, nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if ta.Port < 0 || ta.Port > 65535 {
		return 0, nil, fmt.Errorf("address %q: port %d out of range", addr, ta.Port)
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		s := &unix.SockaddrInet4{Port: ta.Port}
		copy(s.Addr[:], ip4)
		return unix.AF_INET, s, nil
	}
	s := &unix.SockaddrInet6{Port: ta.Port}
	if ta.IP != nil {
		copy(s.Addr[:], ta.IP.To16())
	}
	return unix.AF_INET6, s, nil
}

// addrPort converts a kernel sockaddr to a compact value.
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr).Unmap(), uint16(s.Port))
	}
	return netip.AddrPort{}
}

// rawAddr is the 18-byte form a connection stores (IPv4 as v4-mapped IPv6).
func rawAddr(sa unix.Sockaddr) (ip [16]byte, port uint16) {
	ap := addrPort(sa)
	return ap.Addr().As16(), ap.Port()
}

// storedAddr is the stored form back as an address (IPv4 as 4 bytes).
func storedAddr(ip [16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ip).Unmap(), port)
}

func tcpAddr(ip [16]byte, port uint16) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(storedAddr(ip, port))
}

// tuneConn sets the options every served TCP socket gets: no Nagle delay (messages are
// written whole) and keepalive so dead peers of idle connections are eventually found;
// and receive timestamps when the engine reads with them (Config.RxTimestamps).
func tuneConn(fd int, keepAlive time.Duration, rxStamps bool) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if rxStamps {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	if keepAlive > 0 {
		secs := int(keepAlive / time.Second)
		if secs < 1 {
			secs = 1
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 5)
	}
}

// errReason maps a socket error to the close reason reported for it.
func errReason(err error, fallback CloseReason) CloseReason {
	switch err {
	case unix.ECONNRESET, unix.EPIPE, unix.ECONNABORTED:
		return ReasonPeerReset
	}
	return fallback
}
