// Package redisfleet keeps in Redis what the instances of a fleet share (docs/fleet.md):
// the per-device push logs (PushStore, a push.Store), which instance holds each device's
// connection (Presence), and the global rate limits and nonces. Every change that reads
// and writes is one Lua script, so it is atomic across instances.
package redisfleet

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mgw-project/mgw/config"
)

// NewClient returns a client for fleet.redis. It connects lazily: Redis may be down at
// start, and each command then fails within the configured timeout.
func NewClient(c config.FleetRedis) *redis.Client {
	t := c.Timeout.D()
	return redis.NewClient(&redis.Options{
		Addr: c.Addr, DialTimeout: t, ReadTimeout: t, WriteTimeout: t,
		DisableIdentity:       true, // CLIENT SETINFO is Redis 7.2+; Debian's is 7.0
		MaxRetries:            1,
		ContextTimeoutEnabled: true,
	})
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
