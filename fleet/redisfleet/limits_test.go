package redisfleet

import (
	"context"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/fleettest"
)

// TestGCRAShared: two clients (two instances) draw from one bucket: a burst of 5 at
// 10/s is 5 requests together, not 10, and the refused ones are told how long to wait.
func TestGCRAShared(t *testing.T) {
	r := fleettest.StartRedis(t)
	cfg := config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}
	a, b := NewRateLimit(NewClient(cfg), "t:"), NewRateLimit(NewClient(cfg), "t:")
	interval, tol := int64(100*time.Millisecond), int64(5*100*time.Millisecond)
	ctx := context.Background()
	ok := 0
	var wait time.Duration
	for i := 0; i < 10; i++ {
		rl := a
		if i%2 == 1 {
			rl = b
		}
		yes, w, err := rl.Take(ctx, "route|api|x", interval, tol)
		if err != nil {
			t.Fatal(err)
		}
		if yes {
			ok++
		} else {
			wait = w
		}
	}
	// The bucket refills 10/s; the loop takes well under 100ms on loopback, but allow one.
	if ok < 5 || ok > 6 {
		t.Fatalf("%d of 10 admitted across two instances, want the burst of 5", ok)
	}
	if wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("wait %v, want up to one interval", wait)
	}
	if yes, _, _ := a.Take(ctx, "route|api|other", interval, tol); !yes {
		t.Fatal("another key shares the bucket")
	}
}

func TestNoncesShared(t *testing.T) {
	r := fleettest.StartRedis(t)
	cfg := config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}
	a, b := NewNonces(NewClient(cfg), "t:"), NewNonces(NewClient(cfg), "t:")
	ctx := context.Background()
	if fresh, err := a.Remember(ctx, "app", "n1", time.Minute); !fresh || err != nil {
		t.Fatalf("first sighting: %v %v", fresh, err)
	}
	if fresh, err := b.Remember(ctx, "app", "n1", time.Minute); fresh || err != nil {
		t.Fatalf("replay on the other instance: fresh=%v %v", fresh, err)
	}
	if fresh, _ := b.Remember(ctx, "app2", "n1", time.Minute); !fresh {
		t.Fatal("another app's nonce counted as a replay")
	}
	if fresh, _ := a.Remember(ctx, "app", "short", 50*time.Millisecond); !fresh {
		t.Fatal("short-lived nonce")
	}
	time.Sleep(120 * time.Millisecond) // past its TTL: the timestamp check refuses it from now on
	if fresh, _ := a.Remember(ctx, "app", "short", time.Minute); !fresh {
		t.Fatal("a nonce outlived its window")
	}
	r.Stop()
	if _, err := a.Remember(ctx, "app", "n2", time.Minute); err == nil {
		t.Fatal("no error with Redis down")
	}
}
