package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseByteSize reads a size as GOMEMLIMIT does: an integer with an optional unit B, KiB,
// MiB, GiB or TiB.
func ParseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 2GiB, 512MiB or 1073741824", truncate(s, 64))
	}
	return n * mult, nil
}

// MemoryLimit returns runtime.gomemlimit in bytes, and false when it is unset.
func (r Runtime) MemoryLimit() (int64, bool) {
	if r.GOMEMLIMIT == "" {
		return 0, false
	}
	n, err := ParseByteSize(r.GOMEMLIMIT)
	return n, err == nil
}

// Budgets returns runtime.queued_budget and runtime.pending_budget as netpoll takes them:
// 0 for the default, -1 for "off".
func (r Runtime) Budgets() (queued, pending int64) {
	return parseBudget(r.QueuedBudget), parseBudget(r.PendingBudget)
}

func parseBudget(s string) int64 {
	if s == "off" {
		return -1
	}
	if s == "" {
		return 0
	}
	n, _ := ParseByteSize(s) // validated
	return n
}

// checkBudget accepts a budget: "" (default), "off", or a size.
func checkBudget(s string) error {
	if s == "" || s == "off" {
		return nil
	}
	_, err := ParseByteSize(s)
	if err != nil {
		return fmt.Errorf("%w, or off", err)
	}
	return nil
}

// checkName accepts the names of listeners, clusters, tags and filters: they show up in
// metrics labels and log lines, so they are short and plain.
func checkName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 bytes", truncate(s, 64))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q has %q: use letters, digits, '_', '-', '.'", s, c)
		}
	}
	return nil
}

// checkFilterName accepts a filter's registered name: lowercase letters, digits and '_',
// starting with a letter.
func checkFilterName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 bytes", truncate(s, 64))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return fmt.Errorf("%q is not a filter name (lowercase letters, digits, '_')", s)
		}
	}
	return nil
}

// MaxAPILen bounds an operation type in a route.
const MaxAPILen = 256

// CheckAPIPattern accepts a route's API: an exact operation type such as alipay.trade.pay
// (dot-separated segments of letters, digits, '_' and '-'), a prefix such as alipay.trade.*,
// or * alone.
func CheckAPIPattern(s string) error {
	if s == "*" {
		return nil
	}
	return checkOp(strings.TrimSuffix(s, ".*"), s)
}

func checkOp(op, orig string) error {
	if op == "" {
		return fmt.Errorf("%q is empty", orig)
	}
	if len(orig) > MaxAPILen {
		return fmt.Errorf("%q is longer than %d bytes", truncate(orig, 64), MaxAPILen)
	}
	for seg := range strings.SplitSeq(op, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment (use a.b.c, a.b.*, or *)", orig)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("%q has %q (use a.b.c, a.b.*, or *)", orig, c)
			}
		}
	}
	return nil
}

// checkListenAddr accepts host:port with a port 0..65535; the host may be empty (every
// address), an IP, or a name.
func checkListenAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", truncate(s, 128))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number 0..65535", truncate(s, 128), port)
	}
	if host != "" {
		if err := checkHost(host); err != nil {
			return fmt.Errorf("%q: %w", truncate(s, 128), err)
		}
	}
	return nil
}

// checkUpstreamAddr accepts host:port with a non-empty host and a port 1..65535.
func checkUpstreamAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", truncate(s, 128))
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port %q is not a number 1..65535", truncate(s, 128), port)
	}
	if host == "" {
		return fmt.Errorf("%q: the host is empty", s)
	}
	if err := checkHost(host); err != nil {
		return fmt.Errorf("%q: %w", truncate(s, 128), err)
	}
	return nil
}

func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if len(h) > 253 {
		return fmt.Errorf("host is longer than 253 bytes")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("host %q has %q: not an IP or host name", h, c)
		}
	}
	return nil
}

// checkPath accepts a URL path: starts with '/', no query, fragment, space or control byte.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q does not start with /", truncate(p, 128))
	}
	if len(p) > 1024 {
		return fmt.Errorf("%q is longer than 1024 bytes", truncate(p, 64))
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return fmt.Errorf("%q has %q: not allowed in a path", p, c)
		}
	}
	return nil
}
