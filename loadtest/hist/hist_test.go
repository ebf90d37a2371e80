package hist

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactPercentile is the reference: the value of rank ceil(q% * n) in sorted order.
func exactPercentile(sorted []int64, q float64) int64 {
	r := int(math.Ceil(q / 100 * float64(len(sorted))))
	if r < 1 {
		r = 1
	}
	return sorted[r-1]
}

func relErr(got, want int64) float64 {
	if want == 0 {
		return math.Abs(float64(got))
	}
	return math.Abs(float64(got-want)) / float64(want)
}

func TestBucketsCoverEveryValueContiguously(t *testing.T) {
	// Every bucket's range starts where the previous ended, and values map back into it.
	var next int64
	for i := 0; i < numBuckets; i++ {
		lo, w := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		for _, v := range []int64{lo, lo + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		if i >= 2*subCount && float64(w)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d width %d over 1/%d of %d", i, w, subCount, lo)
		}
		next = lo + w
	}
	if next-1 != MaxValue {
		t.Fatalf("last bucket ends at %d, want %d", next-1, MaxValue)
	}
}

func TestPercentilesWithinBoundOnKnownDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform-1ms-100ms": func() int64 { return 1e6 + rng.Int64N(99e6) },
		"lognormal":         func() int64 { return int64(math.Exp(rng.NormFloat64()*1.5+14)) + 1 },
		"bimodal": func() int64 {
			if rng.IntN(100) == 0 {
				return 2e9 + rng.Int64N(1e8)
			}
			return 5e5 + rng.Int64N(1e5)
		},
		"small-exact": func() int64 { return rng.Int64N(200) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			h := New()
			vals := make([]int64, 50000)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{1, 10, 50, 90, 99, 99.9, 99.99} {
				want := exactPercentile(vals, q)
				got := h.Percentile(q)
				if e := relErr(got, want); e > RelativeError {
					t.Errorf("p%v = %d, exact %d: relative error %.5f over %.5f", q, got, want, e, RelativeError)
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if h.Count() != uint64(len(vals)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestKnownLatencies(t *testing.T) {
	// 90 requests of exactly 10ms, 9 of 50ms, 1 of 1s: p50 10ms, p95 50ms, p99 50ms, max 1s.
	h := New()
	h.RecordN(10e6, 90)
	h.RecordN(50e6, 9)
	h.Record(1e9)
	for _, c := range []struct {
		q    float64
		want int64
	}{{50, 10e6}, {90, 10e6}, {95, 50e6}, {99, 50e6}, {99.9, 1e9}, {100, 1e9}} {
		if got := h.Percentile(c.q); relErr(got, c.want) > RelativeError {
			t.Errorf("p%v = %d, want %d", c.q, got, c.want)
		}
	}
	if got, want := h.Mean(), (90*10e6+9*50e6+1e9)/100.0; math.Abs(got-want) > 1 {
		t.Errorf("mean %v, want %v", got, want)
	}
}

func TestEmptyAndOutOfRange(t *testing.T) {
	h := New()
	if h.Percentile(99) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(-5)            // counted as 0
	h.Record(MaxValue * 10) // clamped to the last bucket, max exact
	if h.Min() != 0 || h.Max() != MaxValue*10 || h.Count() != 2 {
		t.Fatalf("min %d max %d count %d", h.Min(), h.Max(), h.Count())
	}
	if got := h.Percentile(100); got != MaxValue*10 {
		t.Fatalf("p100 %d", got)
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	all, a, b := New(), New(), New()
	for i := 0; i < 20000; i++ {
		v := rng.Int64N(1e9)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	a.Merge(nil)
	a.Merge(New())
	for _, q := range []float64{50, 99, 99.9} {
		if a.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%v merged %d, whole %d", q, a.Percentile(q), all.Percentile(q))
		}
	}
	if a.Count() != all.Count() || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Error("merged summary differs")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	h := New()
	for _, v := range []int64{0, 1, 255, 256, 1e6, 1e6, 3e9} {
		h.Record(v)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var g Histogram
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if g.Count() != h.Count() || g.Max() != h.Max() || g.Min() != h.Min() || g.Percentile(50) != h.Percentile(50) || g.Mean() != h.Mean() {
		t.Fatalf("round trip differs: %s", b)
	}
	empty, _ := json.Marshal(New())
	if err := json.Unmarshal(empty, &g); err != nil || g.Count() != 0 {
		t.Fatalf("empty round trip: %v", err)
	}
}

func TestJSONRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"layout":     `{"sub_bits":5,"count":0,"buckets":[]}`,
		"index":      `{"sub_bits":7,"count":1,"min":1,"max":1,"buckets":[[99999,1]]}`,
		"order":      `{"sub_bits":7,"count":2,"min":1,"max":2,"buckets":[[2,1],[1,1]]}`,
		"zero":       `{"sub_bits":7,"count":0,"buckets":[[1,0]]}`,
		"count":      `{"sub_bits":7,"count":5,"min":1,"max":1,"buckets":[[1,1]]}`,
		"minmax":     `{"sub_bits":7,"count":1,"min":7,"max":7,"buckets":[[1,1]]}`,
		"overflow":   `{"sub_bits":7,"count":1,"min":1,"max":2,"buckets":[[1,18446744073709551615],[2,2]]}`,
		"not-object": `[1,2]`,
	} {
		var h Histogram
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("%s: accepted %s", name, in)
		}
	}
}

func TestRecorderInterval(t *testing.T) {
	r := NewRecorder()
	r.Record(5)
	r.Record(7)
	if iv := r.Interval(); iv.Count() != 2 {
		t.Fatalf("interval count %d", iv.Count())
	}
	r.Record(9)
	if iv := r.Interval(); iv.Count() != 1 || iv.Max() != 9 {
		t.Fatalf("second interval %d/%d", iv.Count(), iv.Max())
	}
	if tot := r.Total(); tot.Count() != 3 {
		t.Fatalf("total %d", tot.Count())
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	for i := 0; b.Loop(); i++ {
		h.Record(int64(i) * 7919 % 1e9)
	}
}

func BenchmarkPercentile(b *testing.B) {
	h := New()
	for i := int64(0); i < 100000; i++ {
		h.Record(i * 7919 % 2e9)
	}
	for b.Loop() {
		h.Percentile(99.9)
	}
}

func BenchmarkMerge(b *testing.B) {
	h, o := New(), New()
	for i := int64(0); i < 10000; i++ {
		o.Record(i * 7919 % 2e9)
	}
	for b.Loop() {
		h.Merge(o)
	}
}
