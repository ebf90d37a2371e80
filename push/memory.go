package push

import (
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// nShards spreads devices over locks: publishes from the admin API and acks from the
// reactor's workers touch different devices at once, and one lock would serialise them.
const nShards = 64

// Memory is the in-process Store. A device that was never pushed to has no record; one
// that was keeps a small record (its epoch counter and last seq) after its log empties,
// so that its seq never restarts within an epoch. Records are never dropped: a restart
// (a new Memory) starts every device over, under a new random base epoch.
type Memory struct {
	lim    Limits
	base   string // random per Memory: a restart's epochs never equal the last run's
	seed   maphash.Seed
	shards [nShards]shard

	used    atomic.Int64 // body bytes in all logs, checked against lim.Budget
	devices atomic.Int64
	pending atomic.Int64

	published, acked, expired, evicted, refused, resets, redelivered atomic.Uint64
}

type shard struct {
	mu sync.Mutex
	m  map[Key]*device
}

// device is one log. Kept small: 100k devices with one message each are the sizing case
// (docs/push.md).
type device struct {
	gen   uint32 // epoch change counter: the epoch is base, then base.1, base.2, ...
	last  uint64 // highest seq assigned
	acked uint64 // highest seq removed as processed (ack or resume); not by expiry
	lost  uint64 // highest seq evicted unprocessed: a resume at or past it only is whole
	bytes int64  // body bytes in log
	log   []entry
}

type entry struct {
	seq       uint64
	expires   int64 // Unix ms; 0 never
	topic, id string
	body      []byte
	taken     bool // handed out by Next or Resume at least once
}

// NewMemory returns an empty store with lim (zero fields take the defaults).
func NewMemory(lim Limits) *Memory {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on Linux; a clock-based base still differs per run.
		return newMemory(lim, "t"+strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	return newMemory(lim, "e"+hex.EncodeToString(b[:]))
}

func newMemory(lim Limits, base string) *Memory {
	m := &Memory{lim: lim.OrDefault(), base: base, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].m = make(map[Key]*device)
	}
	return m
}

// Limits returns the bounds in force.
func (m *Memory) Limits() Limits { return m.lim }

// BaseEpoch is the epoch of a device that has never lost history in this store.
func (m *Memory) BaseEpoch() string { return m.base }

func (m *Memory) shard(k Key) *shard {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(k.App)
	h.WriteByte(0)
	h.WriteString(k.Device)
	return &m.shards[h.Sum64()%nShards]
}

func (m *Memory) epoch(gen uint32) string {
	if gen == 0 {
		return m.base
	}
	return m.base + "." + strconv.FormatUint(uint64(gen), 10)
}

// ours reports whether epoch was issued by this store (for any device): an ack carrying
// another process's epoch refers to a log that no longer exists.
func (m *Memory) ours(epoch string) bool {
	rest, ok := strings.CutPrefix(epoch, m.base)
	return ok && (rest == "" || rest[0] == '.')
}

func (m *Memory) Append(k Key, msg Message, now time.Time) (uint64, string, error) {
	size := int64(len(msg.Body))
	if size > m.lim.MaxBytes {
		return 0, "", ErrTooLarge
	}
	// The budget is reserved before the device's own evictions are known: a publish is
	// refused when the budget is full even if it would have evicted as much as it adds.
	// Refusing is the choice over evicting other devices' messages: a full budget means
	// devices are not reading, and the publisher should learn it (503).
	if m.used.Add(size) > m.lim.Budget {
		m.used.Add(-size)
		m.refused.Add(1)
		return 0, "", ErrBudget
	}
	s := m.shard(k)
	s.mu.Lock()
	d := s.m[k]
	if d == nil {
		d = &device{}
		s.m[k] = d
		m.devices.Add(1)
	}
	m.dropExpired(d, now.UnixMilli())
	d.last++
	d.log = append(d.log, entry{seq: d.last, expires: msg.Expires, topic: msg.Topic, id: msg.MessageID, body: msg.Body})
	d.bytes += size
	m.pending.Add(1)
	evicted := 0
	for len(d.log) > m.lim.MaxMessages || d.bytes > m.lim.MaxBytes {
		d.lost = d.log[0].seq
		m.remove(d, 0)
		evicted++
	}
	if evicted > 0 {
		// The device can no longer be given its whole history: a new epoch tells a
		// resuming client so (mmtp.md).
		d.gen++
		m.evicted.Add(uint64(evicted))
	}
	seq, epoch := d.last, m.epoch(d.gen)
	s.mu.Unlock()
	m.published.Add(1)
	return seq, epoch, nil
}

// remove takes d.log[i] out, with its accounting.
func (m *Memory) remove(d *device, i int) {
	n := int64(len(d.log[i].body))
	d.bytes -= n
	m.used.Add(-n)
	m.pending.Add(-1)
	d.log[i] = entry{} // no reference to the body stays in the backing array
	if i == 0 {
		d.log = d.log[1:]
	} else {
		d.log = slices.Delete(d.log, i, i+1)
	}
	if len(d.log) == 0 {
		d.log = nil // an empty log holds no array
	}
}

// dropExpired removes the messages past their expiry; the epoch stays (mmtp.md).
func (m *Memory) dropExpired(d *device, nowMs int64) int {
	n := 0
	for i := 0; i < len(d.log); {
		if e := d.log[i].expires; e != 0 && e <= nowMs {
			m.remove(d, i)
			n++
			continue
		}
		i++
	}
	if n > 0 {
		m.expired.Add(uint64(n))
	}
	return n
}

func (m *Memory) Ack(k Key, epoch string, seq uint64) bool {
	if !m.ours(epoch) {
		return false
	}
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.m[k]
	if d == nil {
		return false
	}
	// A seq is never reused within this store, so the seq alone names the message even
	// when the epoch moved on (an eviction) after it was sent.
	i, found := slices.BinarySearchFunc(d.log, seq, func(e entry, s uint64) int { return cmpU64(e.seq, s) })
	if !found {
		return false
	}
	m.remove(d, i)
	d.acked = max(d.acked, seq)
	m.acked.Add(1)
	return true
}

func (m *Memory) Resume(k Key, epoch string, seq uint64, hasEpoch bool, limit int, now time.Time) Resumed {
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.m[k]
	if d == nil {
		// Never pushed to: an empty log in the base epoch. A client that names any other
		// position knows of history this store does not have.
		r := Resumed{Epoch: m.base}
		if hasEpoch && (epoch != m.base || seq != 0) {
			r.Reset = true
			m.resets.Add(1)
		}
		return r
	}
	m.dropExpired(d, now.UnixMilli())
	r := Resumed{Epoch: m.epoch(d.gen), Seq: d.last}
	if hasEpoch {
		// Same epoch and nothing after seq is missing: expiry does not count, an ack (or
		// an earlier resume) beyond seq removed a message the client may not have
		// processed, and so did an eviction beyond it. The epoch changes with an
		// eviction, but a client may have learnt the new epoch (a HELLO's answer) while
		// still behind the evicted message.
		if epoch == r.Epoch && seq >= d.acked && seq >= d.lost && seq <= d.last {
			r.After = seq
			for len(d.log) > 0 && d.log[0].seq <= seq {
				m.remove(d, 0)
				m.acked.Add(1)
			}
			d.acked = seq
		} else {
			r.Reset = true
			m.resets.Add(1)
		}
	}
	r.Pending = m.take(d, r.Epoch, r.After, limit)
	return r
}

func (m *Memory) Next(k Key, after uint64, limit int, now time.Time) []Delivery {
	s := m.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.m[k]
	if d == nil {
		return nil
	}
	m.dropExpired(d, now.UnixMilli())
	return m.take(d, m.epoch(d.gen), after, limit)
}

// take hands out up to limit messages after seq, in order; called with the shard locked
// and expired messages already dropped.
func (m *Memory) take(d *device, epoch string, after uint64, limit int) []Delivery {
	i, _ := slices.BinarySearchFunc(d.log, after+1, func(e entry, s uint64) int { return cmpU64(e.seq, s) })
	n := min(len(d.log)-i, limit)
	if n <= 0 {
		return nil
	}
	out := make([]Delivery, n)
	for j := range out {
		e := &d.log[i+j]
		out[j] = Delivery{Seq: e.seq, Epoch: epoch, Redelivery: e.taken,
			Message: Message{Topic: e.topic, Body: e.body, MessageID: e.id, Expires: e.expires}}
		if e.taken {
			m.redelivered.Add(1)
		}
		e.taken = true
	}
	return out
}

func (m *Memory) Sweep(now time.Time) int {
	ms := now.UnixMilli()
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, d := range s.m {
			if len(d.log) > 0 {
				n += m.dropExpired(d, ms)
			}
		}
		s.mu.Unlock()
	}
	return n
}

func (m *Memory) Stats() Stats {
	return Stats{
		Devices: m.devices.Load(), Pending: m.pending.Load(), LogBytes: m.used.Load(), Budget: m.lim.Budget,
		Published: m.published.Load(), Acked: m.acked.Load(), Expired: m.expired.Load(),
		Evicted: m.evicted.Load(), Refused: m.refused.Load(), Resets: m.resets.Load(),
		Redeliver: m.redelivered.Load(),
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
