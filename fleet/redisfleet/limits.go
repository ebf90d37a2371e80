package redisfleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RateLimit is filters.RateBackend in Redis: one GCRA bucket per key, read and updated
// by one script in one round trip, on Redis's clock (instances' clocks may differ).
type RateLimit struct {
	rdb *redis.Client
	p   string
}

// NewRateLimit returns the fleet's rate limits under prefix.
func NewRateLimit(rdb *redis.Client, prefix string) *RateLimit {
	return &RateLimit{rdb: rdb, p: prefix + "rl:"}
}

// The bucket is its theoretical arrival time in µs (so doubles stay exact: µs since
// 1970 are below 2^53). ARGV: interval and tolerance in µs. Returns {1, 0} or {0, wait µs}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tol = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + interval
local over = tat - now - tol
if over > 0 then return {0, math.ceil(over)} end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
return {1, 0}`)

// Take implements filters.RateBackend.
func (r *RateLimit) Take(ctx context.Context, key string, interval, tolerance int64) (bool, time.Duration, error) {
	res, err := gcraScript.Run(ctx, r.rdb, []string{r.p + key},
		strconv.FormatFloat(float64(interval)/1e3, 'f', -1, 64), strconv.FormatFloat(float64(tolerance)/1e3, 'f', -1, 64)).Int64Slice()
	if err != nil {
		return false, 0, err
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

// Nonces is filters.NonceBackend in Redis: SET NX with the rest of the skew window as
// its TTL, so a nonce is remembered fleet-wide exactly as long as a replay could pass
// the timestamp check.
type Nonces struct {
	rdb *redis.Client
	p   string
}

// NewNonces returns the fleet's nonce store under prefix.
func NewNonces(rdb *redis.Client, prefix string) *Nonces {
	return &Nonces{rdb: rdb, p: prefix + "nonce:"}
}

// Remember implements filters.NonceBackend. Long nonces are stored as a digest, so a
// client cannot make Redis hold kilobytes per request.
func (n *Nonces) Remember(ctx context.Context, app, nonce string, ttl time.Duration) (bool, error) {
	k := strconv.Itoa(len(app)) + ":" + app + ":" + nonce
	if len(k) > 128 {
		d := sha256.Sum256([]byte(k))
		k = "h:" + hex.EncodeToString(d[:])
	}
	return n.rdb.SetNX(ctx, n.p+k, 1, max(ttl, time.Millisecond)).Result()
}
