package redisfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/mgw-project/mgw/push"
)

// PushStore is push.Store in Redis, so a device that reconnects to another instance
// resumes from its push-seq. Its semantics are Memory's, to the letter (push/pushtest
// runs the same tests against both); each method is one Lua script.
//
// Keys, under prefix P: P+"push:base" (the fleet's base epoch, made once, new after Redis
// lost its data), P+"push:stats" (fleet-wide counters), P+"push:active" (devices whose
// log is not empty, for Sweep), and per device id (len(app):app:device) P+"push:d:"+id
// (gen, last, acked, lost, bytes), P+"push:e:"+id (the entries' fields) and P+"push:z:"+id (the
// seqs, in order).
//
// push.Store's methods other than Append return no error: when Redis fails, Ack reports
// false, Resume answers an empty log (with push-reset when the client named a position)
// and Next nothing; the failure is logged and counted in mgw_fleet_redis_errors_total.
type PushStore struct {
	rdb    *redis.Client
	p      string
	lim    push.Limits
	tmo    time.Duration
	log    *slog.Logger
	errors *metrics.Counter

	mu      sync.Mutex
	base    string
	stats   push.Stats
	statsAt time.Time
}

// NewPushStore returns the store under prefix; zero limits take push's defaults.
func NewPushStore(rdb *redis.Client, prefix string, lim push.Limits, timeout time.Duration, log *slog.Logger, set *metrics.Set) *PushStore {
	lim = lim.OrDefault()
	if log == nil {
		log = slog.Default()
	}
	if set == nil {
		set = metrics.NewSet()
	}
	return &PushStore{rdb: rdb, p: prefix + "push:", lim: lim, tmo: timeout, log: log.With("component", "fleet.redis"),
		errors: set.GetOrCreateCounter("mgw_fleet_redis_errors_total")}
}

func (s *PushStore) fail(op string, err error) {
	s.errors.Inc()
	s.log.Warn("redis push store", "op", op, "err", err)
}

// BaseEpoch is the epoch of a device that has never lost history: made once per Redis
// dataset (SET NX), so every instance of the fleet issues the same one. "" while Redis
// cannot be reached.
func (s *PushStore) BaseEpoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base != "" {
		return s.base
	}
	var b [6]byte
	rand.Read(b[:])
	ctx, cancel := ctxTimeout(s.tmo)
	defer cancel()
	// SET NX GET: the stored one whether or not this call made it.
	v, err := s.rdb.SetArgs(ctx, s.p+"base", "r"+hex.EncodeToString(b[:]), redis.SetArgs{Mode: "NX", Get: true}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		v, err = s.rdb.Get(ctx, s.p+"base").Result()
	}
	if err != nil {
		s.fail("base epoch", err)
		return ""
	}
	s.base = v
	return v
}

func (s *PushStore) ours(epoch string) bool {
	base := s.BaseEpoch()
	rest, ok := strings.CutPrefix(epoch, base)
	return base != "" && ok && (rest == "" || rest[0] == '.')
}

func epochOf(base string, gen int64) string {
	if gen == 0 {
		return base
	}
	return base + "." + strconv.FormatInt(gen, 10)
}

// based runs call with the base epoch and, when call finds that Redis no longer holds it
// (gone), once more with a new one. It returns the base the last call ran with ("" when
// Redis cannot be reached) and whether that call found it gone too.
func (s *PushStore) based(call func(base string) (gone bool)) (string, bool) {
	for try := 0; ; try++ {
		base := s.BaseEpoch()
		if base == "" {
			return "", false
		}
		if !call(base) {
			return base, false
		}
		if try == 1 {
			return base, true
		}
		s.lostBase(base)
	}
}

// lostBase forgets base, which Redis no longer holds (it lost its data): the next
// BaseEpoch makes a new one, so every device's old position is a push-reset, never a
// gap (docs/fleet.md).
func (s *PushStore) lostBase(base string) {
	s.mu.Lock()
	if s.base == base {
		s.base = ""
	}
	s.mu.Unlock()
	s.log.Warn("redis push store: the base epoch is gone from Redis (it lost its data); a new epoch begins", "old", base)
}

// deviceID names a device unambiguously whatever bytes its app and device ids hold.
func deviceID(k push.Key) string {
	return strconv.Itoa(len(k.App)) + ":" + k.App + ":" + k.Device
}

func (s *PushStore) keys(id string) []string {
	return []string{s.p + "d:" + id, s.p + "e:" + id, s.p + "z:" + id, s.p + "stats", s.p + "active", s.p + "base"}
}

// luaLib is prepended to every script: KEYS are the device's hash, entries, seqs, the
// stats, the active set and the base epoch; ARGV[1] is the device id and ARGV[2] now in
// Unix ms.
const luaLib = `
local D, E, Z, S, A, B = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function remove(seq)
  local n = redis.call('HSTRLEN', E, 'b'..seq)
  redis.call('HDEL', E, 'b'..seq, 't'..seq, 'i'..seq, 'x'..seq, 'k'..seq)
  redis.call('ZREM', Z, seq)
  if n > 0 then -- -0 is "-0" to Redis, not an integer
    redis.call('HINCRBY', D, 'bytes', -n)
    redis.call('HINCRBY', S, 'used', -n)
  end
  redis.call('HINCRBY', S, 'pending', -1)
  if redis.call('ZCARD', Z) == 0 then redis.call('SREM', A, ARGV[1]) end
end
local function dropExpired()
  local now, n = tonumber(ARGV[2]), 0
  for _, seq in ipairs(redis.call('ZRANGE', Z, 0, -1)) do
    local x = tonumber(redis.call('HGET', E, 'x'..seq) or '0')
    if x ~= 0 and x <= now then remove(seq); n = n + 1 end
  end
  if n > 0 then redis.call('HINCRBY', S, 'expired', n) end
  return n
end
local function num(key, field) return tonumber(redis.call('HGET', key, field) or '0') end
local function take(out, after, limit)
  if limit <= 0 then return out end
  for _, seq in ipairs(redis.call('ZRANGEBYSCORE', Z, '(' .. after, '+inf', 'LIMIT', 0, limit)) do
    local f = redis.call('HMGET', E, 't'..seq, 'i'..seq, 'x'..seq, 'k'..seq, 'b'..seq)
    if f[4] == '1' then redis.call('HINCRBY', S, 'redelivered', 1) end
    redis.call('HSET', E, 'k'..seq, '1')
    table.insert(out, seq)
    for i = 1, 5 do table.insert(out, f[i] or '') end
  end
  return out
end
`

// ARGV: id, now, body, topic, message id, expires, max messages, max bytes, budget, base.
// Returns seq and gen; -1 over the budget, -2 when Redis no longer holds base.
var appendScript = redis.NewScript(luaLib + `
if redis.call('GET', B) ~= ARGV[10] then return {-2, 0} end
local size = string.len(ARGV[3])
if redis.call('HINCRBY', S, 'used', size) > tonumber(ARGV[9]) then
  if size > 0 then redis.call('HINCRBY', S, 'used', -size) end
  redis.call('HINCRBY', S, 'refused', 1)
  return {-1, 0}
end
if redis.call('HSETNX', D, 'last', 0) == 1 then redis.call('HINCRBY', S, 'devices', 1) end
dropExpired()
local seq = redis.call('HINCRBY', D, 'last', 1)
redis.call('HSET', E, 'b'..seq, ARGV[3], 't'..seq, ARGV[4], 'i'..seq, ARGV[5], 'x'..seq, ARGV[6], 'k'..seq, '0')
redis.call('ZADD', Z, seq, seq)
redis.call('SADD', A, ARGV[1])
redis.call('HINCRBY', D, 'bytes', size)
redis.call('HINCRBY', S, 'pending', 1)
local ev = 0
while redis.call('ZCARD', Z) > tonumber(ARGV[7]) or num(D, 'bytes') > tonumber(ARGV[8]) do
  local oldest = redis.call('ZRANGE', Z, 0, 0)[1]
  remove(oldest)
  redis.call('HSET', D, 'lost', oldest)
  ev = ev + 1
end
local gen = num(D, 'gen')
if ev > 0 then
  gen = redis.call('HINCRBY', D, 'gen', 1)
  redis.call('HINCRBY', S, 'evicted', ev)
end
redis.call('HINCRBY', S, 'published', 1)
return {seq, gen}
`)

func (s *PushStore) Append(k push.Key, m push.Message, now time.Time) (uint64, string, error) {
	if int64(len(m.Body)) > s.lim.MaxBytes {
		return 0, "", push.ErrTooLarge
	}
	id := deviceID(k)
	var r []int64
	var err error
	base, gone := s.based(func(base string) bool {
		ctx, cancel := ctxTimeout(s.tmo)
		defer cancel()
		r, err = appendScript.Run(ctx, s.rdb, s.keys(id), id, now.UnixMilli(), m.Body, m.Topic, m.MessageID, m.Expires,
			s.lim.MaxMessages, s.lim.MaxBytes, s.lim.Budget, base).Int64Slice()
		return err == nil && r[0] == -2
	})
	switch {
	case base == "":
		return 0, "", errors.New("push: the fleet's Redis is unreachable; the message was not stored")
	case err != nil:
		s.fail("append", err)
		return 0, "", fmt.Errorf("push: the fleet's Redis: %w; the message was not stored", err)
	case gone:
		return 0, "", errors.New("push: the fleet's base epoch keeps changing in Redis; the message was not stored")
	case r[0] < 0:
		return 0, "", push.ErrBudget
	}
	return uint64(r[0]), epochOf(base, r[1]), nil
}

// ARGV: id, now, seq.
var ackScript = redis.NewScript(luaLib + `
if not redis.call('ZSCORE', Z, ARGV[3]) then return 0 end
remove(ARGV[3])
if tonumber(ARGV[3]) > num(D, 'acked') then redis.call('HSET', D, 'acked', ARGV[3]) end
redis.call('HINCRBY', S, 'acked', 1)
return 1
`)

func (s *PushStore) Ack(k push.Key, epoch string, seq uint64) bool {
	if !s.ours(epoch) {
		return false
	}
	id := deviceID(k)
	ctx, cancel := ctxTimeout(s.tmo)
	defer cancel()
	n, err := ackScript.Run(ctx, s.rdb, s.keys(id), id, 0, seq).Int64()
	if err != nil {
		s.fail("ack", err)
		return false
	}
	return n == 1
}

// ARGV: id, now, base, epoch, seq, has epoch (1/0), limit. Returns gen, last, reset,
// after, then six values per message (seq, topic, id, expires, taken, body); {-2} when
// Redis no longer holds base.
var resumeScript = redis.NewScript(luaLib + `
local base = ARGV[3]
if redis.call('GET', B) ~= base then return {-2} end
if redis.call('EXISTS', D) == 0 then
  local reset = 0
  if ARGV[6] == '1' and (ARGV[4] ~= base or ARGV[5] ~= '0') then
    reset = 1
    redis.call('HINCRBY', S, 'resets', 1)
  end
  return {0, 0, reset, 0}
end
dropExpired()
local gen, last, acked, lost = num(D, 'gen'), num(D, 'last'), num(D, 'acked'), num(D, 'lost')
local ep = base
if gen ~= 0 then ep = base .. '.' .. gen end
local after, reset = 0, 0
if ARGV[6] == '1' then
  local seq = tonumber(ARGV[5])
  if ARGV[4] == ep and seq >= acked and seq >= lost and seq <= last then
    after = seq
    for _, old in ipairs(redis.call('ZRANGEBYSCORE', Z, '-inf', ARGV[5])) do
      remove(old)
      redis.call('HINCRBY', S, 'acked', 1)
    end
    redis.call('HSET', D, 'acked', ARGV[5])
  else
    reset = 1
    redis.call('HINCRBY', S, 'resets', 1)
  end
end
return take({gen, last, reset, after}, after, tonumber(ARGV[7]))
`)

func (s *PushStore) Resume(k push.Key, epoch string, seq uint64, hasEpoch bool, limit int, now time.Time) push.Resumed {
	id := deviceID(k)
	has := "0"
	if hasEpoch {
		has = "1"
	}
	var r []any
	var err error
	base, _ := s.based(func(base string) bool {
		ctx, cancel := ctxTimeout(s.tmo)
		defer cancel()
		r, err = resumeScript.Run(ctx, s.rdb, s.keys(id), id, now.UnixMilli(), base, epoch, seq, has, limit).Slice()
		return err == nil && len(r) == 1 // {-2}
	})
	if base == "" {
		return push.Resumed{Reset: hasEpoch}
	}
	if err != nil || len(r) < 4 { // also {-2} twice
		s.fail("resume", err)
		return push.Resumed{Epoch: base, Reset: hasEpoch}
	}
	gen, last, reset, after := r[0].(int64), r[1].(int64), r[2].(int64), r[3].(int64)
	ep := epochOf(base, gen)
	return push.Resumed{Epoch: ep, Seq: uint64(last), Reset: reset == 1, After: uint64(after), Pending: deliveries(ep, r[4:])}
}

// ARGV: id, now, after, limit. Returns gen, then six values per message.
var nextScript = redis.NewScript(luaLib + `
if redis.call('EXISTS', D) == 0 then return {} end
dropExpired()
return take({num(D, 'gen')}, ARGV[3], tonumber(ARGV[4]))
`)

func (s *PushStore) Next(k push.Key, after uint64, limit int, now time.Time) []push.Delivery {
	base := s.BaseEpoch()
	if base == "" {
		return nil
	}
	id := deviceID(k)
	ctx, cancel := ctxTimeout(s.tmo)
	defer cancel()
	r, err := nextScript.Run(ctx, s.rdb, s.keys(id), id, now.UnixMilli(), after, limit).Slice()
	if err != nil {
		s.fail("next", err)
		return nil
	}
	if len(r) == 0 {
		return nil
	}
	return deliveries(epochOf(base, r[0].(int64)), r[1:])
}

func deliveries(epoch string, r []any) []push.Delivery {
	if len(r) < 6 {
		return nil
	}
	out := make([]push.Delivery, 0, len(r)/6)
	for i := 0; i+6 <= len(r); i += 6 {
		str := func(j int) string { v, _ := r[i+j].(string); return v }
		seq, _ := strconv.ParseUint(str(0), 10, 64)
		exp, _ := strconv.ParseInt(str(3), 10, 64)
		d := push.Delivery{Seq: seq, Epoch: epoch, Redelivery: str(4) == "1",
			Message: push.Message{Topic: str(1), MessageID: str(2), Expires: exp}}
		if b := str(5); b != "" {
			d.Body = []byte(b)
		}
		out = append(out, d)
	}
	return out
}

// ARGV: id, now.
var sweepScript = redis.NewScript(luaLib + `return dropExpired()`)

// Sweep drops the expired messages of every device with a non-empty log. Every instance
// sweeps (there is no leader); a sweep is idempotent, so running it twice costs only time.
func (s *PushStore) Sweep(now time.Time) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.tmo)
	defer cancel()
	n := 0
	var cursor uint64
	for {
		ids, next, err := s.rdb.SScan(ctx, s.p+"active", cursor, "", 256).Result()
		if err != nil {
			s.fail("sweep", err)
			return n
		}
		for _, id := range ids {
			d, err := sweepScript.Run(ctx, s.rdb, s.keys(id), id, now.UnixMilli()).Int()
			if err != nil {
				s.fail("sweep", err)
				return n
			}
			n += d
		}
		if cursor = next; cursor == 0 {
			return n
		}
	}
}

// Stats are the fleet's counters (every instance's publishes and acks), read at most
// every half second: a metrics scrape reads a dozen of them at once.
func (s *PushStore) Stats() push.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.statsAt) < 500*time.Millisecond {
		return s.stats
	}
	ctx, cancel := ctxTimeout(s.tmo)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.p+"stats").Result()
	if err != nil {
		s.fail("stats", err)
		return s.stats
	}
	i := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	u := func(k string) uint64 { return uint64(i(k)) }
	s.stats = push.Stats{Devices: i("devices"), Pending: i("pending"), LogBytes: i("used"), Budget: s.lim.Budget,
		Published: u("published"), Acked: u("acked"), Expired: u("expired"), Evicted: u("evicted"),
		Refused: u("refused"), Resets: u("resets"), Redeliver: u("redelivered")}
	s.statsAt = time.Now()
	return s.stats
}
