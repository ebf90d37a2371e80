package ratelimit

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// table holds the token buckets of one route, keyed, bounded by max keys. It is split in
// shards, each a map from key to a slot in a slice threaded by an LRU list (indices, not
// pointers: nothing for the GC to chase), under its own mutex.
//
// A bucket is one int64, its GCRA "theoretical arrival time" (tat): refill is computed
// lazily from the clock at each take; no goroutine, no timer.
//
// When a shard is full, the least recently used bucket makes room. If that bucket is
// still "active" (tat in the future: it holds less than a full burst, so forgetting it
// gives its key tokens back), the table cannot keep its promise exactly: with fail-open it
// evicts anyway and counts it degraded; with fail-closed it refuses the new key instead.
// An idle bucket (refilled to a full burst) is forgotten with no loss at all.
type table struct {
	digestSeeds [2]maphash.Seed
	// base is the zero of the table's clock: bucket times are ns since base (monotonic
	// when the clock is time.Now). It lives with the buckets, which may outlive a Limiter.
	base   time.Time
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

type shard struct {
	mu    sync.Mutex
	idx   map[string]int32
	slots []slot
	max   int
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used
	// latest is the latest clock reading seen under the lock. A caller reads the clock
	// before it gets the lock; a goroutine delayed in between would judge with a stale
	// "now" and refuse spuriously, so the shard's clock never goes back.
	latest int64
	_      [32]byte
}

type slot struct {
	key        string
	tat        int64 // ns on the table's clock
	prev, next int32
}

// takeResult is the outcome of one take.
type takeResult uint8

const (
	allowed takeResult = iota
	limited            // over the rate: wait is set
	full               // fail-closed: no room for a new key without losing live state
)

func newTable(maxKeys int, base time.Time) *table {
	n := 1
	for n < 64 && maxKeys/(n*2) >= 64 {
		n *= 2
	}
	t := &table{base: base, seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n),
		digestSeeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range t.shards {
		c := maxKeys / n
		if i < maxKeys%n {
			c++
		}
		t.shards[i] = shard{idx: make(map[string]int32), max: c, head: -1, tail: -1}
	}
	return t
}

// take spends one token of key's bucket at time now (ns). interval is the time one token
// takes to refill, tolerance the burst times interval. It returns the verdict, how long
// to wait when limited (or full: until the least recent bucket is idle), and whether a
// live bucket was evicted to make room.
// key is not retained (it may point into a request buffer); a copy is stored.
func (t *table) take(key string, now, interval, tolerance int64, failOpen bool) (res takeResult, wait int64, evictedLive bool) {
	s := &t.shards[maphash.String(t.seed, key)&t.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if now < s.latest {
		now = s.latest
	} else {
		s.latest = now
	}
	i, found := s.idx[key]
	if found {
		s.touch(i)
	} else {
		if len(s.slots) < s.max {
			i = int32(len(s.slots))
			s.slots = append(s.slots, slot{})
		} else {
			i = s.tail
			if s.slots[i].tat > now {
				if !failOpen {
					// The new key may get a bucket once the least recent one is idle.
					return full, s.slots[i].tat - now, false
				}
				evictedLive = true
			}
			delete(s.idx, s.slots[i].key)
			s.unlink(i)
		}
		s.slots[i] = slot{key: strings.Clone(key), tat: now, prev: -1, next: -1}
		s.idx[s.slots[i].key] = i
		s.pushFront(i)
	}
	sl := &s.slots[i]
	tat := sl.tat
	if tat < now {
		tat = now
	}
	tat += interval
	if over := tat - now - tolerance; over > 0 {
		return limited, over, evictedLive
	}
	sl.tat = tat
	return allowed, 0, evictedLive
}

func (s *shard) touch(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *shard) unlink(i int32) {
	sl := &s.slots[i]
	if sl.prev >= 0 {
		s.slots[sl.prev].next = sl.next
	} else {
		s.head = sl.next
	}
	if sl.next >= 0 {
		s.slots[sl.next].prev = sl.prev
	} else {
		s.tail = sl.prev
	}
	sl.prev, sl.next = -1, -1
}

func (s *shard) pushFront(i int32) {
	sl := &s.slots[i]
	sl.prev = -1
	sl.next = s.head
	if s.head >= 0 {
		s.slots[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

// digest returns a 17-byte stand-in for a long key: a marker byte and two keyed 64-bit
// hashes. A short key equal to a digest would only share that one bucket.
func (t *table) digest(key string) (d [17]byte) {
	d[0] = 0xff
	binary.LittleEndian.PutUint64(d[1:], maphash.String(t.digestSeeds[0], key))
	binary.LittleEndian.PutUint64(d[9:], maphash.String(t.digestSeeds[1], key))
	return d
}

// len returns the number of buckets held.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.slots)
		s.mu.Unlock()
	}
	return n
}
