package redisfleet

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/fleettest"
	"github.com/mgw-project/mgw/push"
	"github.com/mgw-project/mgw/push/pushtest"
)

var storeN atomic.Int64

// uncached reads the counters at every call, as the suite expects of a store.
type uncached struct{ *PushStore }

func (u uncached) Stats() push.Stats {
	u.mu.Lock()
	u.statsAt = time.Time{}
	u.mu.Unlock()
	return u.PushStore.Stats()
}

// TestPushStoreSuite holds the Redis store to the in-memory store's tests; each store
// of the suite is a fresh prefix, as a fresh Redis would be.
func TestPushStoreSuite(t *testing.T) {
	r := fleettest.StartRedis(t)
	rdb := NewClient(config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(2 * time.Second)})
	t.Cleanup(func() { rdb.Close() })
	pushtest.Run(t, func(t *testing.T, lim push.Limits) pushtest.Store {
		return uncached{NewPushStore(rdb, fmt.Sprintf("t%d:", storeN.Add(1)), lim, 2*time.Second, nil, nil)}
	})
}

// TestPushStoreSharedAndDown: two stores on one Redis (two instances) see one log; with
// Redis gone, Append fails with an error and the other methods answer empty, and they
// work again once it is back.
func TestPushStoreSharedAndDown(t *testing.T) {
	r := fleettest.StartRedis(t)
	cfg := config.FleetRedis{Addr: r.Addr, Timeout: config.Duration(time.Second)}
	a := NewPushStore(NewClient(cfg), "f:", push.Limits{}, time.Second, nil, nil)
	b := NewPushStore(NewClient(cfg), "f:", push.Limits{}, time.Second, nil, nil)
	k := push.Key{App: "app", Device: "d1"}
	now := time.Now()
	seq, ep, err := a.Append(k, push.Message{Topic: "t", Body: []byte("hello")}, now)
	if err != nil || seq != 1 || ep != b.BaseEpoch() {
		t.Fatalf("append on a: %d %q %v (b's base %q)", seq, ep, err, b.BaseEpoch())
	}
	// The device resumes on b from push-seq 0 of a's epoch: no reset, the message is there.
	res := b.Resume(k, ep, 0, true, 16, now)
	if res.Reset || res.Seq != 1 || len(res.Pending) != 1 || string(res.Pending[0].Body) != "hello" {
		t.Fatalf("resume on b: %+v", res)
	}
	if !b.Ack(k, ep, 1) || a.Ack(k, ep, 1) {
		t.Fatal("ack on b, then the same ack on a: want true then false")
	}
	r.Stop()
	if _, _, err := a.Append(k, push.Message{Topic: "t", Body: []byte("x")}, now); err == nil {
		t.Fatal("append with Redis down succeeded")
	}
	if d := a.Next(k, 0, 16, now); d != nil {
		t.Fatalf("next with Redis down: %+v", d)
	}
	r.Restart(r.Ready)
	// Redis lost its data (no persistence): a new base epoch, so a client's old position
	// is a reset, never a silent gap.
	c := NewPushStore(NewClient(cfg), "f:", push.Limits{}, time.Second, nil, nil)
	if res := c.Resume(k, ep, 1, true, 16, now); !res.Reset || res.Epoch == ep {
		t.Fatalf("resume after Redis lost its data: %+v (old epoch %q)", res, ep)
	}
	// The stores that ran before the loss too: a publishes in the new epoch, not in the
	// old one from seq 1 again (a client at the old epoch's seq 1 would skip it), and b
	// answers the old position with a reset.
	for i := 1; i <= 3; i++ {
		seq, ep2, err := a.Append(k, push.Message{Topic: "t", Body: []byte("after")}, now)
		if err != nil || ep2 == ep || seq != uint64(i) {
			t.Fatalf("append %d after the loss: seq %d epoch %q %v; want a new epoch (old %q)", i, seq, ep2, err, ep)
		}
	}
	if res := b.Resume(k, ep, 1, true, 16, now); !res.Reset || res.Epoch == ep || len(res.Pending) != 3 {
		t.Fatalf("resume on b at the old epoch after the loss: %+v (old epoch %q); want a reset and the 3 new messages", res, ep)
	}
}
