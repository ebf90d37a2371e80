// Package pushtest is the behaviour every push.Store keeps (mmtp.md "Push delivery"):
// seq, epoch, eviction, expiry, ack, resume and the budget, run against any
// implementation by Run, so the in-memory store and the fleet's Redis store are held to
// the same tests.
package pushtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/push"
)

// Store is a push.Store that names its base epoch: the epoch of a device that never lost
// history in it.
type Store interface {
	push.Store
	BaseEpoch() string
}

// NewStore makes an empty store with lim; each call is a new store (its own devices and
// base epoch), as a restart would be.
type NewStore func(t *testing.T, lim push.Limits) Store

// Run runs every test of the suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, NewStore)
	}{
		{"SeqAndEpoch", seqAndEpoch}, {"AckAndResume", ackAndResume}, {"ResumeUnknownDevice", resumeUnknownDevice},
		{"EvictionChangesEpoch", evictionChangesEpoch}, {"ExpiryKeepsEpoch", expiryKeepsEpoch},
		{"BudgetRefuses", budgetRefuses}, {"Concurrent", concurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newStore) })
	}
}

var t0 = time.UnixMilli(1_800_000_000_000)

func msg(body string) push.Message { return push.Message{Topic: "t", Body: []byte(body)} }

func mustAppend(t *testing.T, s push.Store, k push.Key, m push.Message) (uint64, string) {
	t.Helper()
	seq, ep, err := s.Append(k, m, t0)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return seq, ep
}

func seqs(ds []push.Delivery) []uint64 {
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

func seqAndEpoch(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{})
	k := push.Key{App: "app", Device: "dev"}
	r := s.Resume(k, "", 0, false, 16, t0)
	if r.Epoch != s.BaseEpoch() || r.Seq != 0 || r.Reset || len(r.Pending) != 0 {
		t.Fatalf("fresh device: %+v", r)
	}
	if !push.ValidEpoch(r.Epoch) {
		t.Fatalf("epoch %q is not valid per mmtp.md", r.Epoch)
	}
	for i := 1; i <= 3; i++ {
		seq, ep := mustAppend(t, s, k, msg(fmt.Sprint(i)))
		if seq != uint64(i) || ep != r.Epoch {
			t.Fatalf("append %d: seq %d epoch %q, want %d %q", i, seq, ep, i, r.Epoch)
		}
	}
	// Another device has its own numbering.
	if seq, _ := mustAppend(t, s, push.Key{App: "app", Device: "other"}, msg("x")); seq != 1 {
		t.Fatalf("other device seq %d", seq)
	}
	got := s.Next(k, 0, 16, t0)
	if fmt.Sprint(seqs(got)) != "[1 2 3]" || string(got[2].Body) != "3" || got[0].Topic != "t" {
		t.Fatalf("next: %v", seqs(got))
	}
	// A restart (a new store) never reuses the epochs of the last one.
	if s2 := newStore(t, push.Limits{}); s2.BaseEpoch() == s.BaseEpoch() {
		t.Fatalf("two stores share base epoch %q", s.BaseEpoch())
	}
}

func ackAndResume(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{})
	k := push.Key{App: "", Device: "d"}
	_, ep := mustAppend(t, s, k, msg("1"))
	mustAppend(t, s, k, msg("2"))
	mustAppend(t, s, k, msg("3"))
	if !s.Ack(k, ep, 1) || !s.Ack(k, ep, 2) {
		t.Fatal("ack of a pending message reported absent")
	}
	if s.Ack(k, ep, 2) {
		t.Fatal("second ack of 2 reported present")
	}
	if s.Ack(k, "elsewhere", 3) {
		t.Fatal("ack under a foreign epoch removed a message")
	}
	mustAppend(t, s, k, msg("4"))
	r := s.Resume(k, ep, 2, true, 16, t0)
	if r.Reset || r.Seq != 4 || r.Epoch != ep || fmt.Sprint(seqs(r.Pending)) != "[3 4]" {
		t.Fatalf("resume at 2: %+v", r)
	}
	// Resuming from before an acknowledged message: it is gone, so reset.
	r = s.Resume(k, ep, 1, true, 16, t0)
	if !r.Reset || fmt.Sprint(seqs(r.Pending)) != "[3 4]" {
		t.Fatalf("resume at 1 after ack of 2: %+v", r)
	}
	// A foreign epoch resets; no epoch sends everything without reset.
	if r = s.Resume(k, "x", 2, true, 16, t0); !r.Reset {
		t.Fatalf("foreign epoch: %+v", r)
	}
	if r = s.Resume(k, "", 0, false, 16, t0); r.Reset || len(r.Pending) != 2 {
		t.Fatalf("no epoch: %+v", r)
	}
	// A push-seq beyond what was assigned is history this log never had.
	if r = s.Resume(k, ep, 9, true, 16, t0); !r.Reset {
		t.Fatalf("push-seq 9 of 4: %+v", r)
	}
	// Resuming at 3 drops 3 as processed; the log keeps 4.
	if r = s.Resume(k, ep, 3, true, 16, t0); r.Reset || fmt.Sprint(seqs(r.Pending)) != "[4]" {
		t.Fatalf("resume at 3: %+v", r)
	}
	if st := s.Stats(); st.Pending != 1 || st.Acked != 3 {
		t.Fatalf("stats %+v", st)
	}
	// An empty log keeps its record: seq goes on, epoch stays.
	s.Ack(k, ep, 4)
	if seq, ep2 := mustAppend(t, s, k, msg("5")); seq != 5 || ep2 != ep {
		t.Fatalf("after emptying: seq %d epoch %q", seq, ep2)
	}
}

func resumeUnknownDevice(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{})
	k := push.Key{App: "a", Device: "never"}
	if r := s.Resume(k, s.BaseEpoch(), 0, true, 16, t0); r.Reset || r.Seq != 0 {
		t.Fatalf("base epoch, seq 0: %+v", r)
	}
	if r := s.Resume(k, s.BaseEpoch(), 3, true, 16, t0); !r.Reset {
		t.Fatalf("base epoch, seq 3 never assigned: %+v", r)
	}
	if r := s.Resume(k, "old-run", 0, true, 16, t0); !r.Reset || r.Epoch != s.BaseEpoch() {
		t.Fatalf("an earlier run's epoch: %+v", r)
	}
	if st := s.Stats(); st.Devices != 0 {
		t.Fatalf("resume made a record: %+v", st)
	}
}

func evictionChangesEpoch(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{MaxMessages: 4, MaxBytes: 10})
	k := push.Key{App: "a", Device: "d"}
	var ep0 string
	for i := 1; i <= 4; i++ {
		_, ep0 = mustAppend(t, s, k, msg("x"))
	}
	seq, ep1 := mustAppend(t, s, k, msg("x"))
	if seq != 5 || ep1 == ep0 || !push.ValidEpoch(ep1) {
		t.Fatalf("fifth append: seq %d epoch %q (was %q)", seq, ep1, ep0)
	}
	if got := seqs(s.Next(k, 0, 16, t0)); fmt.Sprint(got) != "[2 3 4 5]" {
		t.Fatalf("log after eviction: %v", got)
	}
	r := s.Resume(k, ep0, 0, true, 16, t0)
	if !r.Reset || r.Epoch != ep1 || r.Seq != 5 || len(r.Pending) != 4 || !r.Pending[0].Redelivery {
		t.Fatalf("resume in the old epoch: %+v", r)
	}
	// In the new epoch too, a position before the evicted message is not whole (the
	// client may have learnt the epoch from a HELLO's answer, message 1 unprocessed); one
	// at it is.
	if r := s.Resume(k, ep1, 0, true, 16, t0); !r.Reset {
		t.Fatalf("resume in the current epoch before the evicted message: %+v, want a reset", r)
	}
	if r := s.Resume(k, ep1, 1, true, 16, t0); r.Reset || r.After != 1 || len(r.Pending) != 4 {
		t.Fatalf("resume in the current epoch at the evicted message: %+v, want no reset and 2..5", r)
	}
	// The byte bound evicts too: 7 bytes on top of 4 makes 11 > 10.
	_, ep2 := mustAppend(t, s, k, msg("1234567"))
	if ep2 == ep1 {
		t.Fatal("byte eviction kept the epoch")
	}
	if _, _, err := s.Append(k, msg(strings.Repeat("x", 11)), t0); err != push.ErrTooLarge {
		t.Fatalf("body over max_bytes: %v", err)
	}
	if st := s.Stats(); st.Evicted != 2 || st.LogBytes != 10 {
		t.Fatalf("stats %+v", st)
	}
}

func expiryKeepsEpoch(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{})
	k := push.Key{App: "a", Device: "d"}
	_, ep := mustAppend(t, s, k, push.Message{Topic: "t", Body: []byte("soon"), Expires: t0.Add(time.Second).UnixMilli()})
	mustAppend(t, s, k, msg("late"))
	later := t0.Add(2 * time.Second)
	got := s.Next(k, 0, 16, later)
	if fmt.Sprint(seqs(got)) != "[2]" {
		t.Fatalf("expired message handed out: %v", seqs(got))
	}
	// Expiry is not lost history: resuming before it is no reset.
	if r := s.Resume(k, ep, 0, true, 16, later); r.Reset || r.Epoch != ep {
		t.Fatalf("resume across an expiry: %+v", r)
	}
	_, ep2, _ := s.Append(k, push.Message{Topic: "t", Expires: t0.Add(time.Second).UnixMilli()}, t0)
	if ep2 != ep {
		t.Fatal("epoch changed")
	}
	if n := s.Sweep(later); n != 1 {
		t.Fatalf("sweep dropped %d, want 1", n)
	}
	if st := s.Stats(); st.Expired != 2 || st.Pending != 1 || st.LogBytes != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func budgetRefuses(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{Budget: 10})
	if _, _, err := s.Append(push.Key{App: "a", Device: "1"}, msg("123456"), t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Append(push.Key{App: "a", Device: "2"}, msg("123456"), t0); err != push.ErrBudget {
		t.Fatalf("over budget: %v", err)
	}
	s.Ack(push.Key{App: "a", Device: "1"}, s.BaseEpoch(), 1)
	if _, _, err := s.Append(push.Key{App: "a", Device: "2"}, msg("123456"), t0); err != nil {
		t.Fatalf("after the ack freed room: %v", err)
	}
}

// concurrent runs publishers, ackers and resumers on overlapping devices (run with
// -race): every device ends with gap-free seqs and the byte count matches the logs.
func concurrent(t *testing.T, newStore NewStore) {
	s := newStore(t, push.Limits{MaxMessages: 8})
	const devices, per = 20, 200
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				for d := 0; d < devices; d++ {
					k := push.Key{App: "a", Device: fmt.Sprint(d)}
					switch (i + w) % 4 {
					case 0, 1:
						s.Append(k, msg("ab"), t0)
					case 2:
						for _, x := range s.Next(k, 0, 4, t0) {
							s.Ack(k, x.Epoch, x.Seq)
						}
					case 3:
						r := s.Resume(k, "", 0, false, 16, t0)
						_ = r
					}
				}
			}
		}()
	}
	wg.Wait()
	var bytes int64
	for d := 0; d < devices; d++ {
		all := s.Next(push.Key{App: "a", Device: fmt.Sprint(d)}, 0, 1000, t0)
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Fatalf("device %d out of order: %v", d, seqs(all))
			}
		}
		bytes += int64(2 * len(all))
	}
	if st := s.Stats(); st.LogBytes != bytes || st.Published != 4*per*devices/2 {
		t.Fatalf("stats %+v, counted %d bytes", st, bytes)
	}
}
