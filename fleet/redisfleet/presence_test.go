package redisfleet

import (
	"context"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/fleettest"
	"github.com/mgw-project/mgw/push"
)

// TestPresenceMovesAndExpires: the holder is told of publishes elsewhere; when the
// device moves, the old holder's release does not erase the new presence; a holder that
// stops refreshing is forgotten after the TTL, one that refreshes is not.
func TestPresenceMovesAndExpires(t *testing.T) {
	r := fleettest.StartRedis(t)
	cfg := config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}
	rdb := NewClient(cfg)
	defer rdb.Close()
	ttl := time.Second // refreshed every 333ms: a loaded box has two thirds of it in hand
	a, b, c := NewPresence(rdb, "t:", ttl, time.Second, nil, nil), NewPresence(rdb, "t:", ttl, time.Second, nil, nil), NewPresence(rdb, "t:", ttl, time.Second, nil, nil)
	k := push.Key{App: "shop", Device: "d1"}
	got := make(chan push.Key, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx, func(k push.Key) { got <- k }, func() []push.Key { return []push.Key{k} })
	time.Sleep(100 * time.Millisecond) // the subscription is in place

	if c.Forward(k) {
		t.Fatal("forwarded for a device nobody holds")
	}
	a.Held(k)
	b.Held(k) // the device moved to b
	a.Released(k)
	if !c.Forward(k) {
		t.Fatal("a's release erased b's presence")
	}
	select {
	case n := <-got:
		if n != k {
			t.Fatalf("b was told of %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b was not told of the publish")
	}
	if b.Forward(k) {
		t.Fatal("the holder forwarded to itself")
	}
	// b refreshes every ttl/3: after several TTLs it still holds k.
	time.Sleep(5 * ttl / 2)
	if !c.Forward(k) {
		t.Fatal("a refreshing holder's presence expired")
	}
	// A holder that stops (b's Run ends) is forgotten after the TTL.
	cancel()
	time.Sleep(2 * ttl)
	if c.Forward(k) {
		t.Fatal("a stopped holder's presence outlived its TTL")
	}
}
