package gateway

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/bytebufferpool"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/fleet/redisfleet"
	"github.com/mgw-project/mgw/push"
)

// pushHub connects the push store to connections (mmtp.md "Push delivery"): it knows
// which connection is each device's current one (the latest successful HELLO) and sends
// a device's messages there, at most push.Window unacknowledged at a time.
//
// Locking: a hub shard lock guards only the device -> connection map and is never held
// while taking a pushState's lock. A pushState's lock is held while its PUSH frames are
// taken from the store and written, so concurrent senders (a publish from the admin
// API, an ack on the reactor) cannot reorder them on the wire; Write never blocks, so
// the lock is short.
type pushHub struct {
	store  push.Store
	cfg    config.Push
	maxTTL time.Duration
	maxLen int64 // push.max_bytes: a body over it never fits a log

	seed   maphash.Seed
	shards [64]hubShard

	connected atomic.Int64
	delivered *metrics.Counter

	// In a fleet (fleet.redis) the logs live in Redis and presence says which instance
	// holds each device; nil on a single instance.
	presence pushPresence

	stop    chan struct{}
	done    chan struct{}
	fwdDone chan struct{}
}

// pushPresence is the fleet's record of which instance holds each device
// (redisfleet.Presence): Held is recorded before a bound device is sent its log, so a
// publish anywhere either reaches the holder or is in the log the holder reads.
type pushPresence interface {
	Held(push.Key)
	Released(push.Key)
	Forward(push.Key) bool
	Run(ctx context.Context, notify func(push.Key), held func() []push.Key)
}

// hubShard maps a device's identity (app-id and device-id in one string) to its current
// connection's push side. The map is keyed by the identity's 64-bit hash, which takes a
// map slot of 16 bytes where the string would take 24: about 13 bytes less per
// connection (issue 21). Identities with one hash (a chance of about n²/2⁶⁵) chain
// through pushState.next.
type hubShard struct {
	mu sync.Mutex
	m  map[uint64]*pushState
}

// getLocked returns the push side bound to id, or nil.
func (sh *hubShard) getLocked(hash uint64, id identity) *pushState {
	for p := sh.m[hash]; p != nil; p = p.next {
		if p.id == id {
			return p
		}
	}
	return nil
}

// setLocked binds p to its identity and returns the push side it replaced, if any.
func (sh *hubShard) setLocked(hash uint64, p *pushState) (old *pushState) {
	head := sh.m[hash]
	var prev *pushState
	for q := head; q != nil; prev, q = q, q.next {
		if q.id == p.id {
			old = q
			if prev == nil {
				head = q.next
			} else {
				prev.next = q.next
			}
			q.next = nil
			break
		}
	}
	p.next = head
	sh.m[hash] = p
	return old
}

// deleteLocked unbinds p and reports whether it was bound.
func (sh *hubShard) deleteLocked(hash uint64, p *pushState) bool {
	var prev *pushState
	for q := sh.m[hash]; q != nil; prev, q = q, q.next {
		if q != p {
			continue
		}
		switch {
		case prev != nil:
			prev.next = q.next
		case q.next != nil:
			sh.m[hash] = q.next
		default:
			delete(sh.m, hash)
		}
		q.next = nil
		return true
	}
	return false
}

// pushSweepEvery is how often expired messages of devices nobody touches are dropped (a
// touched log drops its own as it is read), so the budget is not held by the dead.
const pushSweepEvery = 5 * time.Second

// newPushHub keeps the logs in memory, or with fleet.redis (r and its client rdb) in
// Redis, with presence.
func newPushHub(cfg config.Push, r *config.FleetRedis, rdb *redis.Client, set *metrics.Set, log *slog.Logger) *pushHub {
	maxBytes, budget := cfg.Bytes()
	lim := push.Limits{MaxMessages: cfg.MaxMessages, MaxBytes: maxBytes, Budget: budget}
	var st push.Store = push.NewMemory(lim)
	var pres pushPresence
	if r != nil {
		st = redisfleet.NewPushStore(rdb, r.Prefix, lim, r.Timeout.D(), log, set)
		pres = redisfleet.NewPresence(rdb, r.Prefix, r.PresenceTTL.D(), r.Timeout.D(), log, set)
	}
	h := &pushHub{store: st, presence: pres, cfg: cfg, maxTTL: cfg.MaxTTL.D(), maxLen: maxBytes, seed: maphash.MakeSeed(),
		delivered: set.GetOrCreateCounter("mgw_push_delivered_total")}
	for i := range h.shards {
		h.shards[i].m = make(map[uint64]*pushState)
	}
	stat := func(name string, v func(s *push.Stats) float64) {
		set.GetOrCreateGauge(name, func() float64 { s := h.store.Stats(); return v(&s) })
	}
	stat("mgw_push_published_total", func(s *push.Stats) float64 { return float64(s.Published) })
	stat("mgw_push_acked_total", func(s *push.Stats) float64 { return float64(s.Acked) })
	stat("mgw_push_redelivered_total", func(s *push.Stats) float64 { return float64(s.Redeliver) })
	stat("mgw_push_expired_total", func(s *push.Stats) float64 { return float64(s.Expired) })
	stat("mgw_push_evicted_total", func(s *push.Stats) float64 { return float64(s.Evicted) })
	stat("mgw_push_refused_total", func(s *push.Stats) float64 { return float64(s.Refused) })
	stat("mgw_push_resets_total", func(s *push.Stats) float64 { return float64(s.Resets) })
	stat("mgw_push_log_bytes", func(s *push.Stats) float64 { return float64(s.LogBytes) })
	stat("mgw_push_pending", func(s *push.Stats) float64 { return float64(s.Pending) })
	stat("mgw_push_devices", func(s *push.Stats) float64 { return float64(s.Devices) })
	set.GetOrCreateGauge("mgw_push_connected_devices", func() float64 { return float64(h.connected.Load()) })
	return h
}

// start runs the one sweeper of the gateway (no timer per device or connection) and, in
// a fleet, the listener for publishes forwarded from other instances.
func (h *pushHub) start() {
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	if h.presence != nil {
		ctx, cancel := context.WithCancel(context.Background())
		fwdDone := make(chan struct{})
		go func() { defer close(fwdDone); h.presence.Run(ctx, h.notify, h.heldKeys) }()
		go func() { <-h.stop; cancel() }()
		h.fwdDone = fwdDone
	}
	go func() {
		defer close(h.done)
		t := time.NewTicker(pushSweepEvery)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				h.store.Sweep(now)
			case <-h.stop:
				return
			}
		}
	}()
}

func (h *pushHub) close() {
	if h.stop != nil {
		close(h.stop)
		<-h.done
		if h.fwdDone != nil {
			<-h.fwdDone
		}
		h.stop = nil
	}
}

// heldKeys lists the devices bound here, for the presence refresh.
func (h *pushHub) heldKeys() []push.Key {
	var out []push.Key
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for _, p := range sh.m {
			for ; p != nil; p = p.next {
				out = append(out, p.id.pushKey())
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// shard returns id's shard and its key there.
func (h *pushHub) shard(id identity) (*hubShard, uint64) {
	hash := maphash.String(h.seed, string(id))
	return &h.shards[hash%uint64(len(h.shards))], hash
}

// PushStats is the push block of GET /v1/stats.
type PushStats struct {
	push.Stats
	Connected int64  `json:"connected_devices"` // devices with a current connection
	Delivered uint64 `json:"delivered"`         // PUSH frames written
}

func (h *pushHub) stats() *PushStats {
	return &PushStats{Stats: h.store.Stats(), Connected: h.connected.Load(), Delivered: h.delivered.Get()}
}

// pushState is a connection's push side, made by its HELLO when the HELLO names a device.
// An idle one holds no map: inflight exists only while pushes are unacknowledged. There is
// one per connection with a device, so it is kept small (session_size_test.go guards its
// size).
type pushState struct {
	s  *mmtpSession
	id identity // the device; the same string as the session's, no copy

	// bound: the device's current connection, new pushes go here. Atomic, not under mu:
	// unbind runs from onClose, which a Write inside pump (holding mu) may call on its
	// own goroutine when the write fails.
	bound  atomic.Bool
	stream uint32 // last PUSH stream id used; under mu (beside bound: no padding)

	next *pushState // another device with the same hash in the hub's shard; under its lock

	mu       sync.Mutex
	sent     uint64 // highest seq sent on this connection
	inflight map[uint32]sentPush
}

func (p *pushState) key() push.Key { return p.id.pushKey() }

type sentPush struct {
	seq   uint64
	epoch string
}

// bind makes p its device's current connection; the previous one stops getting pushes
// (its unacknowledged ones are still acknowledged to the store if their acks come).
func (h *pushHub) bind(p *pushState) {
	p.bound.Store(true)
	sh, hash := h.shard(p.id)
	sh.mu.Lock()
	old := sh.setLocked(hash, p)
	sh.mu.Unlock()
	if h.presence != nil {
		h.presence.Held(p.key())
	}
	if old == nil {
		h.connected.Add(1)
		return
	}
	old.bound.Store(false)
}

// unbind ends p's push side: its connection closed or said HELLO again. Its
// unacknowledged pushes stay in the log for the device's next connection. It takes no
// pushState lock (see bound).
func (h *pushHub) unbind(p *pushState) {
	p.bound.Store(false)
	sh, hash := h.shard(p.id)
	sh.mu.Lock()
	gone := sh.deleteLocked(hash, p)
	if gone {
		h.connected.Add(-1)
	}
	sh.mu.Unlock()
	if gone && h.presence != nil {
		h.presence.Released(p.key())
	}
}

// notify sends k's new messages on its current connection, if it has one.
func (h *pushHub) notify(k push.Key) {
	id := makeIdentity(k.App, k.Device) // "" for an app no HELLO can name: never bound
	sh, hash := h.shard(id)
	sh.mu.Lock()
	p := sh.getLocked(hash, id)
	sh.mu.Unlock()
	if p != nil {
		h.pump(p)
	}
}

// pump fills p's window from the log: the messages after the last one sent here, in seq
// order, none expired (the store drops those as it hands messages out).
func (h *pushHub) pump(p *pushState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	room := push.Window - len(p.inflight)
	if !p.bound.Load() || room <= 0 {
		return
	}
	ds := h.store.Next(p.key(), p.sent, room, time.Now())
	if len(ds) == 0 {
		return
	}
	if p.inflight == nil {
		p.inflight = make(map[uint32]sentPush, push.Window)
	}
	b := bytebufferpool.Get()
	for i := range ds {
		d := &ds[i]
		id := p.nextStream()
		p.inflight[id] = sentPush{seq: d.Seq, epoch: d.Epoch}
		p.sent = d.Seq
		b.B = appendPush(b.B, id, d)
	}
	// One write for the batch: the frames cannot interleave with another writer's.
	p.s.c.Write(b.B)
	bytebufferpool.Put(b)
	h.delivered.Add(len(ds))
}

// nextStream picks a non-zero PUSH stream id not among the unacknowledged ones.
func (p *pushState) nextStream() uint32 {
	for {
		p.stream++
		if p.stream == 0 {
			continue
		}
		if _, used := p.inflight[p.stream]; !used {
			return p.stream
		}
	}
}

// ack handles a PUSH_ACK: an unknown stream id is ignored (mmtp.md: it may race a
// reconnect); a known one leaves the log and frees a place in the window.
func (h *pushHub) ack(p *pushState, stream uint32) {
	p.mu.Lock()
	sp, ok := p.inflight[stream]
	if ok {
		delete(p.inflight, stream)
		if len(p.inflight) == 0 {
			p.inflight = nil // a map never shrinks: an idle connection holds none
		}
	}
	p.mu.Unlock()
	if !ok {
		return
	}
	h.store.Ack(p.key(), sp.epoch, sp.seq)
	h.pump(p)
}

func appendPush(dst []byte, stream uint32, d *push.Delivery) []byte {
	var a [4]codec.Field
	hdr := append(a[:0], codec.Field{Key: "seq", Value: strconv.FormatUint(d.Seq, 10)},
		codec.Field{Key: "epoch", Value: d.Epoch})
	if d.MessageID != "" {
		hdr = append(hdr, codec.Field{Key: "message-id", Value: d.MessageID})
	}
	if d.Expires != 0 {
		hdr = append(hdr, codec.Field{Key: "expires", Value: strconv.FormatInt(d.Expires, 10)})
	}
	return mmtp.AppendPush(dst, stream, d.Topic, hdr, d.Body, false)
}

// pushResume is what a HELLO asks of push: its push-epoch and push-seq.
type pushResume struct {
	epoch    string
	seq      uint64
	hasEpoch bool
}

// parsePushResume reads a HELLO's push-epoch and push-seq; a push-seq that is not a
// decimal number is answered 400 naming it.
func parsePushResume(f *mmtp.Frame) (pushResume, *codec.Response) {
	var r pushResume
	if v, ok := f.Get("push-epoch"); ok {
		r.epoch, r.hasEpoch = string(v), true
	}
	if v, ok := f.Get("push-seq"); ok {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil || len(v) == 0 || v[0] == '+' {
			return r, codec.ErrorResponse(http.StatusBadRequest, codec.ErrBadRequest,
				"header push-seq must be a decimal number (the last seq processed), not "+quote(string(v)))
		}
		r.seq = n
	}
	return r, nil
}

// pushHello resumes the device the session's HELLO named: it puts push-epoch, push-seq
// (and push-reset) on the 200, and returns what to call once the 200 is written, so that
// no PUSH goes out ahead of it: binding the connection and sending what the log holds.
// A HELLO without device-id gets the headers of an empty log and no binding: no push can
// be addressed to it.
func (s *mmtpSession) pushHello(ok *codec.Response, r pushResume) (after func()) {
	h := s.l.g.push
	s.mu.Lock()
	id := s.ident
	old := s.push
	s.mu.Unlock()
	if old != nil {
		// A second HELLO on the connection: no new pushes go out on the old push side,
		// but it stays the session's until the new one binds, so acks that come
		// meanwhile still count.
		h.unbind(old)
	}
	key := id.pushKey()
	res := h.store.Resume(key, r.epoch, r.seq, r.hasEpoch, 0, time.Now())
	ok.Header = append(ok.Header, codec.Field{Key: "push-epoch", Value: res.Epoch},
		codec.Field{Key: "push-seq", Value: strconv.FormatUint(res.Seq, 10)})
	if res.Reset {
		ok.Header = append(ok.Header, codec.Field{Key: "push-reset", Value: "1"})
	}
	if key.Device == "" {
		s.mu.Lock()
		if s.push == old {
			s.push = nil
		}
		s.mu.Unlock()
		return func() {}
	}
	p := &pushState{s: s, id: id, sent: res.After}
	return func() {
		if old != nil {
			// The new push side resumes as its HELLO asks (what was sent may go out
			// again: at least once), but takes over the unacknowledged pushes: they
			// still fill the connection's window of 16 (mmtp.md), their acks still
			// count, and their stream ids are not reused.
			old.mu.Lock()
			p.stream, p.inflight = old.stream, old.inflight
			old.inflight = nil
			old.mu.Unlock()
		}
		if s.bindPush(p) {
			h.pump(p)
		}
	}
}

// bindPush makes the session its device's current connection, with p as its push side.
// It reports false when the connection closed meanwhile: onClose may have run before the
// binding, so it is undone, or the device would stay bound to a dead connection until its
// next HELLO.
func (s *mmtpSession) bindPush(p *pushState) bool {
	h := s.l.g.push
	s.mu.Lock()
	s.push = p
	s.mu.Unlock()
	h.bind(p)
	if s.c.Closed() {
		h.unbind(p)
		return false
	}
	return true
}

func (s *mmtpSession) onPushAck(stream uint32) {
	s.mu.Lock()
	p := s.push
	s.mu.Unlock()
	if p != nil {
		s.l.g.push.ack(p, stream)
	}
}

// pushClosed ends the connection's push side; unacknowledged pushes stay in the log.
func (s *mmtpSession) pushClosed() {
	s.mu.Lock()
	p := s.push
	s.push = nil
	s.mu.Unlock()
	if p != nil {
		s.l.g.push.unbind(p)
	}
}
