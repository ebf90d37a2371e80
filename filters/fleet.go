package filters

import (
	"context"
	"time"
)

// Fleet is what the instances of a fleet share for the filters (fleet.redis,
// docs/fleet.md); Env.Fleet is nil on a single instance. The in-process stores stay the
// fallback: a filter whose fleet backend fails uses its own, and counts it degraded.
type Fleet struct {
	RateLimit RateBackend
	Nonces    NonceBackend
}

// RateBackend is a rate limit every instance shares: a GCRA bucket per key.
type RateBackend interface {
	// Take spends one request of key's bucket, interval apart with tolerance the burst
	// (both in ns, as the ratelimit filter's own buckets). When it is limited, wait is
	// how long until it would not be.
	Take(ctx context.Context, key string, interval, tolerance int64) (ok bool, wait time.Duration, err error)
}

// NonceBackend remembers nonces for every instance: a nonce seen on any is a replay.
type NonceBackend interface {
	// Remember records app's nonce for ttl and reports whether it was new.
	Remember(ctx context.Context, app, nonce string, ttl time.Duration) (fresh bool, err error)
}
