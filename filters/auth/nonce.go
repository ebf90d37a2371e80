package auth

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxNonces bounds the nonces a route's replay store remembers. An entry costs
// about 40 bytes (a 64-bit hash and an expiry in a Go map), so the default costs ~40 MiB
// at worst; at 3,000 signed requests per second with nonces it covers a 300 s window.
const DefaultMaxNonces = 1 << 20

const nonceShards = 64

// nonceStore remembers (app, nonce) pairs until their timestamp leaves the skew window,
// so a replay within the window is refused. It is bounded: each shard holds at most its
// share of max entries. Only requests with a valid signature reach it, so a stranger
// cannot fill it; a signing client that sends more fresh nonces than the bound within one
// window can, and then the route's fail_open decides.
//
// Pairs are stored as a keyed 64-bit hash (random seed per store, so collisions cannot be
// aimed): no allocation per request, and a false "replay" needs a collision among a
// million entries, about 1 in 10^13 per request.
type nonceStore struct {
	seed   maphash.Seed
	shards [nonceShards]nonceShard
}

type nonceShard struct {
	mu        sync.Mutex
	m         map[uint64]int64 // hash -> expiry, Unix ms
	max       int
	nextSweep int64 // Unix ms; a full shard sweeps expired entries at most once a second
	_         [64]byte
}

// nonceVerdict is the outcome of remembering a nonce.
type nonceVerdict uint8

const (
	nonceFresh  nonceVerdict = iota // first sighting: remembered
	nonceReplay                     // seen before, inside the window
	nonceFull                       // the store is full of live entries: cannot decide
)

func newNonceStore(max int) *nonceStore {
	if max <= 0 {
		max = DefaultMaxNonces
	}
	s := &nonceStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		n := max / nonceShards
		if i < max%nonceShards {
			n++
		}
		s.shards[i].max = n
		s.shards[i].m = make(map[uint64]int64)
	}
	return s
}

func (s *nonceStore) hash(app, nonce string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(app)
	h.WriteByte(0)
	h.WriteString(nonce)
	return h.Sum64()
}

// remember records (app, nonce) until expires (Unix ms); now is the gateway clock (Unix ms).
func (s *nonceStore) remember(app, nonce string, expires, now int64) nonceVerdict {
	h := s.hash(app, nonce)
	sh := &s.shards[h%nonceShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	exp, seen := sh.m[h]
	if seen && exp >= now {
		return nonceReplay
	}
	if !seen && len(sh.m) >= sh.max {
		if now < sh.nextSweep {
			return nonceFull
		}
		sh.nextSweep = now + 1000
		for k, exp := range sh.m {
			if exp < now {
				delete(sh.m, k)
			}
		}
		if len(sh.m) >= sh.max {
			return nonceFull
		}
	}
	sh.m[h] = expires
	return nonceFresh
}

// len returns the number of entries held (live or expired), for tests and metrics.
func (s *nonceStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// remember records (app, nonce) until expires (Unix ms) in the fleet's store when there
// is one (a nonce seen on any instance is a replay), else, or while that store fails, in
// this instance's.
func (a *Authenticator) remember(app, nonce string, expires, now int64) nonceVerdict {
	if a.fleet != nil {
		fresh, err := a.fleet.Remember(context.Background(), app, nonce, time.Duration(max(expires-now, 1))*time.Millisecond)
		if err == nil {
			if fresh {
				return nonceFresh
			}
			return nonceReplay
		}
		a.counters.Degraded.Inc()
	}
	return a.nonces.remember(app, nonce, expires, now)
}
