package redisfleet

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/fleettest"
)

// BenchmarkGlobalRateLimit is the latency a scope: global limit adds to a request: one
// script round trip to a real redis-server on loopback.
func BenchmarkGlobalRateLimit(b *testing.B) {
	r := fleettest.StartRedis(b)
	rl := NewRateLimit(NewClient(config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}), "b:")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := rl.Take(ctx, "route|api|demo.op", int64(time.Microsecond), int64(time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFleetNonce is the latency fleet-wide replay protection adds: one SET NX.
func BenchmarkFleetNonce(b *testing.B) {
	r := fleettest.StartRedis(b)
	n := NewNonces(NewClient(config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}), "b:")
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := n.Remember(ctx, "app", strconv.Itoa(i), time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
