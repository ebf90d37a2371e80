// Package proxyproto decodes the PROXY protocol header (versions 1 and 2) that an access
// layer prepends to a connection, so the gateway sees the real client address behind it.
// It is pure: Parse looks at the bytes a read returned and says how many the header took.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
)

// MaxV1 is the longest v1 header, CRLF included (spec section 2.1).
const MaxV1 = 107

// maxV2 bounds the v2 address block we accept: addresses plus TLVs an access layer adds
// (it is a 16-bit field; we refuse absurd sizes rather than buffer 64 KiB per connection).
const maxV2 = 2048

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Header is a decoded PROXY header.
type Header struct {
	Version int
	// Local is true for a v2 LOCAL command or a v1 UNKNOWN: the connection was made by the
	// access layer itself (a health check); the socket's own addresses stand.
	Local       bool
	Source      netip.AddrPort
	Destination netip.AddrPort
}

// Error says what is wrong with a header and at which byte offset.
type Error struct {
	Offset int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("proxy protocol: %s at byte %d", e.Reason, e.Offset)
}

func fail(off int, format string, args ...any) error {
	return &Error{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Parse decodes a PROXY header at the start of b. It returns n == 0 and a nil error when b
// is a valid prefix of a header that is not complete yet; an error as soon as b cannot
// start one (a connection without a header on a listener that requires one).
func Parse(b []byte) (h Header, n int, err error) {
	if len(b) == 0 {
		return h, 0, nil
	}
	switch b[0] {
	case 'P':
		return parseV1(b)
	case '\r':
		return parseV2(b)
	}
	return h, 0, fail(0, "no PROXY header (first byte 0x%02x)", b[0])
}

func parseV1(b []byte) (h Header, n int, err error) {
	if k := min(len(b), len(sigV1)); !bytes.Equal(b[:k], sigV1[:k]) {
		return h, 0, fail(0, "bad v1 signature")
	}
	end := bytes.IndexByte(b[:min(len(b), MaxV1)], '\n')
	if end < 0 {
		if len(b) >= MaxV1 {
			return h, 0, fail(MaxV1, "v1 header longer than %d bytes", MaxV1)
		}
		return h, 0, nil
	}
	if end == 0 || b[end-1] != '\r' {
		return h, 0, fail(end, "v1 line does not end in CRLF")
	}
	line := b[len(sigV1) : end-1]
	h.Version = 1
	fields := bytes.Split(line, []byte{' '})
	switch string(fields[0]) {
	case "UNKNOWN":
		h.Local = true
		return h, end + 1, nil
	case "TCP4", "TCP6":
	default:
		return h, 0, fail(len(sigV1), "v1 protocol %q is not TCP4, TCP6 or UNKNOWN", fields[0])
	}
	if len(fields) != 5 {
		return h, 0, fail(len(sigV1), "v1 header has %d fields, want 5", len(fields))
	}
	off := len(sigV1) + len(fields[0]) + 1
	src, err := v1Addr(fields[1], fields[3], fields[0], off)
	if err != nil {
		return h, 0, err
	}
	off += len(fields[1]) + 1
	dst, err := v1Addr(fields[2], fields[4], fields[0], off)
	if err != nil {
		return h, 0, err
	}
	h.Source, h.Destination = src, dst
	return h, end + 1, nil
}

func v1Addr(ip, port, proto []byte, off int) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(string(ip))
	if err != nil || a.Zone() != "" || (string(proto) == "TCP4") != a.Is4() {
		return netip.AddrPort{}, fail(off, "v1 address %q is not a %s address", ip, proto)
	}
	// Ports are decimal without sign or leading zeros, 0..65535.
	if len(port) == 0 || len(port) > 5 || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, fail(off, "v1 port %q is malformed", port)
	}
	p, err := strconv.ParseUint(string(port), 10, 16)
	if err != nil {
		return netip.AddrPort{}, fail(off, "v1 port %q is malformed", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func parseV2(b []byte) (h Header, n int, err error) {
	if k := min(len(b), len(sigV2)); !bytes.Equal(b[:k], sigV2[:k]) {
		return h, 0, fail(0, "bad v2 signature")
	}
	if len(b) < 16 {
		return h, 0, nil
	}
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return h, 0, fail(12, "v2 version %d, want 2", verCmd>>4)
	}
	cmd := verCmd & 0x0f
	if cmd > 1 {
		return h, 0, fail(12, "v2 command %d is not LOCAL or PROXY", cmd)
	}
	size := int(binary.BigEndian.Uint16(b[14:16]))
	if size > maxV2 {
		return h, 0, fail(14, "v2 address block of %d bytes is over %d", size, maxV2)
	}
	if len(b) < 16+size {
		return h, 0, nil
	}
	h.Version = 2
	n = 16 + size
	if cmd == 0 {
		h.Local = true
		return h, n, nil
	}
	blk := b[16:n]
	switch fam {
	case 0x11: // TCP over IPv4
		if size < 12 {
			return h, 0, fail(14, "v2 TCP4 address block of %d bytes, want at least 12", size)
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(blk[0:4])), binary.BigEndian.Uint16(blk[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(blk[4:8])), binary.BigEndian.Uint16(blk[10:12]))
	case 0x21: // TCP over IPv6
		if size < 36 {
			return h, 0, fail(14, "v2 TCP6 address block of %d bytes, want at least 36", size)
		}
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(blk[0:16])), binary.BigEndian.Uint16(blk[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(blk[16:32])), binary.BigEndian.Uint16(blk[34:36]))
	case 0x00: // UNSPEC: the access layer does not know; keep the socket's addresses
		h.Local = true
	default:
		return h, 0, fail(13, "v2 family/transport 0x%02x is not TCP4, TCP6 or UNSPEC", fam)
	}
	return h, n, nil
}

// AppendV1 appends a v1 header for src→dst, as an access layer would send it; the tests
// and the load-test harness use it.
func AppendV1(dst []byte, src, dest netip.AddrPort) []byte {
	proto := "TCP4"
	if !src.Addr().Is4() {
		proto = "TCP6"
	}
	dst = append(dst, sigV1...)
	dst = append(dst, proto...)
	dst = append(dst, ' ')
	dst = src.Addr().AppendTo(dst)
	dst = append(dst, ' ')
	dst = dest.Addr().AppendTo(dst)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(src.Port()), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(dest.Port()), 10)
	return append(dst, '\r', '\n')
}

// AppendV2 appends a v2 PROXY header for src→dst (both IPv4 or both IPv6).
func AppendV2(dst []byte, src, dest netip.AddrPort) []byte {
	dst = append(dst, sigV2...)
	dst = append(dst, 0x21)
	if src.Addr().Is4() {
		dst = append(dst, 0x11, 0, 12)
		s, d := src.Addr().As4(), dest.Addr().As4()
		dst = append(dst, s[:]...)
		dst = append(dst, d[:]...)
	} else {
		dst = append(dst, 0x21, 0, 36)
		s, d := src.Addr().As16(), dest.Addr().As16()
		dst = append(dst, s[:]...)
		dst = append(dst, d[:]...)
	}
	dst = binary.BigEndian.AppendUint16(dst, src.Port())
	return binary.BigEndian.AppendUint16(dst, dest.Port())
}
