package redisfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/mgw-project/mgw/push"
)

// Presence records which instance holds each device's connection, so that a publish on
// any instance reaches the one holding the device: P+"push:at:"+device id holds the
// holder's instance id with a TTL the holder refreshes, and each instance listens on
// its own channel P+"push:to:"+instance id for "this device has new messages".
//
// Delivery never depends on presence being exact: the log is in Redis, and a holder
// sends a device what the log holds when it binds (after recording its presence) and
// whenever told. A publish that reads a stale holder tells an instance that no longer has
// the device, which ignores it; the new holder bound after the message was appended and
// took it from the log.
type Presence struct {
	rdb    *redis.Client
	p      string
	id     string
	ttl    time.Duration
	tmo    time.Duration
	log    *slog.Logger
	errors *metrics.Counter
	fwd    *metrics.Counter
}

// NewPresence returns the presence of this instance, with a fresh instance id.
func NewPresence(rdb *redis.Client, prefix string, ttl, timeout time.Duration, log *slog.Logger, set *metrics.Set) *Presence {
	var b [4]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	if log == nil {
		log = slog.Default()
	}
	if set == nil {
		set = metrics.NewSet()
	}
	return &Presence{rdb: rdb, p: prefix + "push:", id: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		ttl: ttl, tmo: timeout, log: log.With("component", "fleet.redis"),
		errors: set.GetOrCreateCounter("mgw_fleet_redis_errors_total"),
		fwd:    set.GetOrCreateCounter("mgw_fleet_push_forwarded_total")}
}

// ID is this instance's id in the fleet.
func (p *Presence) ID() string { return p.id }

func (p *Presence) fail(op string, err error) {
	p.errors.Inc()
	p.log.Warn("redis presence", "op", op, "err", err)
}

// Held records that this instance now holds k's connection. Call it before sending k
// what its log holds (see Presence).
func (p *Presence) Held(k push.Key) {
	ctx, cancel := ctxTimeout(p.tmo)
	defer cancel()
	if err := p.rdb.Set(ctx, p.p+"at:"+deviceID(k), p.id, p.ttl).Err(); err != nil {
		p.fail("held", err)
	}
}

// releaseScript deletes a presence only if it is still this instance's: the device may
// have moved to another instance already.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Released records that this instance no longer holds k's connection.
func (p *Presence) Released(k push.Key) {
	ctx, cancel := ctxTimeout(p.tmo)
	defer cancel()
	if err := releaseScript.Run(ctx, p.rdb, []string{p.p + "at:" + deviceID(k)}, p.id).Err(); err != nil {
		p.fail("released", err)
	}
}

// Forward tells the instance holding k, if another one does, that k's log has new
// messages. It reports whether it told one.
func (p *Presence) Forward(k push.Key) bool {
	ctx, cancel := ctxTimeout(p.tmo)
	defer cancel()
	holder, err := p.rdb.Get(ctx, p.p+"at:"+deviceID(k)).Result()
	if err == redis.Nil || holder == p.id {
		return false
	}
	if err != nil {
		p.fail("forward", err)
		return false
	}
	if err := p.rdb.Publish(ctx, p.p+"to:"+holder, k.App+"\x00"+k.Device).Err(); err != nil {
		p.fail("forward", err)
		return false
	}
	p.fwd.Inc()
	return true
}

// Run listens for forwarded publishes (notify is called with the device) and refreshes
// the presence of the devices held (held lists them) every third of the TTL, until ctx
// is done. A Redis outage is survived: the subscription reconnects, and the refresh
// after it restores presences that expired meanwhile.
func (p *Presence) Run(ctx context.Context, notify func(push.Key), held func() []push.Key) {
	sub := p.rdb.Subscribe(ctx, p.p+"to:"+p.id)
	defer sub.Close()
	ch := sub.Channel()
	tick := time.NewTicker(p.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			app, dev, found := strings.Cut(m.Payload, "\x00")
			if found {
				notify(push.Key{App: app, Device: dev})
			}
		case <-tick.C:
			p.refresh(ctx, held())
		}
	}
}

func (p *Presence) refresh(ctx context.Context, keys []push.Key) {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		c, cancel := context.WithTimeout(ctx, 5*p.tmo)
		_, err := p.rdb.Pipelined(c, func(pl redis.Pipeliner) error {
			for _, k := range keys[:n] {
				pl.Set(c, p.p+"at:"+deviceID(k), p.id, p.ttl)
			}
			return nil
		})
		cancel()
		if err != nil {
			p.fail("refresh", err)
			return
		}
		keys = keys[n:]
	}
}
