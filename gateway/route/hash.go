package route

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// unitHash maps (routeKey, stickyKey, cluster) to a number strictly inside (0, 1):
// the first 8 bytes of SHA-256("routeKey\x00stickyKey\x00cluster") read big-endian, keep
// the top 53 bits, add one half and divide by 2^53. SHA-256 rather than a fast
// non-cryptographic hash because any tool (sha256sum, Python hashlib) reproduces it
// exactly and its bits are uniform even when keys differ only in their last byte.
// docs/routing.md documents this; changing it moves every device, so don't.
func unitHash(routeKey, stickyKey, cluster string) float64 {
	var stack [256]byte
	b := stack[:0]
	b = append(b, routeKey...)
	b = append(b, 0)
	b = append(b, stickyKey...)
	b = append(b, 0)
	b = append(b, cluster...)
	sum := sha256.Sum256(b)
	x := binary.BigEndian.Uint64(sum[:8]) >> 11
	return (float64(x) + 0.5) / (1 << 53)
}

// score is the weighted rendezvous score -w/ln(u). For a fixed key, the cluster with the
// highest score wins; raising one cluster's weight raises only its own score, so keys can
// only move into it (monotonicity), and the winner is cluster c with probability
// w_c / sum(w) over uniformly distributed keys.
func score(w, u float64) float64 {
	return -w / math.Log(u)
}
