// Package worker splits a load across worker processes and runs one worker. A process may
// hold only as many connections as its open-file limit allows, so the harness starts
// itself again (`mgw loadtest worker`) as many times as N needs, gives each a Spec on
// stdin, and merges the histograms and counters they stream back on stdout.
package worker

import (
	"fmt"
	"net/netip"
	"strings"
)

// FDMargin is what a worker keeps of its open-file limit for itself: stdio, the epoll and
// event fds of its pollers, the runtime's own.
const FDMargin = 256

// Plan says how many connections each worker holds.
type Plan struct {
	Requested int   // connections asked for
	Conns     int   // connections that will be attempted (after limits)
	PerWorker []int // connections per worker; len is the worker count
	Offsets   []int // global index of each worker's first connection
	Notes     []string
}

// Split divides n connections into the fewest workers that each hold at most maxPer, but
// at least minWorkers (to exercise merging, or spread CPU). maxPer <= 0 is an error.
func Split(n, maxPer, minWorkers int) (Plan, error) {
	if n <= 0 {
		return Plan{}, fmt.Errorf("conns %d: want at least 1", n)
	}
	if maxPer <= 0 {
		return Plan{}, fmt.Errorf("open-file limit leaves %d connections per worker: raise nofile above %d", maxPer, FDMargin)
	}
	w := (n + maxPer - 1) / maxPer
	w = max(w, minWorkers, 1)
	w = min(w, n) // never an empty worker
	p := Plan{Requested: n, Conns: n}
	off := 0
	for i := 0; i < w; i++ {
		k := n / w
		if i < n%w {
			k++
		}
		p.PerWorker = append(p.PerWorker, k)
		p.Offsets = append(p.Offsets, off)
		off += k
	}
	return p, nil
}

// MaxSourceAddrs bounds a source range, so a typo cannot ask for millions of addresses.
const MaxSourceAddrs = 4096

// ParseSourceAddrs reads "127.0.0.2-127.0.0.50", a comma list, or a mix. Ranges are
// inclusive and must stay within one address family.
func ParseSourceAddrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("source address %q: %w", lo, err)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(hi))
		if err != nil {
			return nil, fmt.Errorf("source range %q: end %q: %w", part, hi, err)
		}
		if a.Is4() != b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("source range %q: end before start or another family", part)
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if len(out) > MaxSourceAddrs {
				return nil, fmt.Errorf("source range %q: more than %d addresses", part, MaxSourceAddrs)
			}
			if x == b {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("source addresses %q: none given", s)
	}
	return out, nil
}

// LoopbackRange returns consecutive addresses from 127.0.0.(2+skip), enough for n
// connections at perAddr each (wrapping within 127.0.0.2-127.0.0.254): the automatic
// choice when the target is on loopback. skip lets successive runs use fresh addresses, so
// the TIME_WAIT sockets one run leaves do not slow the next run's binds.
func LoopbackRange(n, perAddr, skip int) []netip.Addr {
	const first, span = 2, 253
	k := max(1, (n+perAddr-1)/perAddr)
	k = min(k, span)
	out := make([]netip.Addr, 0, k)
	for i := 0; i < k; i++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, 0, byte(first + (max(skip, 0)+i)%span)}))
	}
	return out
}
