// Package hist is a log-linear latency histogram in the style of HdrHistogram: values below
// 2^SubBits are counted exactly, and every power-of-two range above is split into 2^SubBits
// equal buckets, so a bucket's width is at most 1/2^SubBits of its lower bound. Percentiles
// report the bucket's midpoint (clamped to the observed min and max), which bounds the
// relative error of any reported value by 1/2^(SubBits+1) ≈ 0.4%.
//
// Counts are kept in a flat array (no allocation per Record), so Record is a few
// instructions. A Histogram is not safe for concurrent use; Recorder wraps one for that.
package hist

import (
	"math"
	"math/bits"
)

// SubBits is log2 of the buckets per power of two. 7 gives 128 buckets per octave: a width
// of at most 0.78% of the value, a midpoint error of at most 0.39%.
const SubBits = 7

const subCount = 1 << SubBits

// MaxValue is the largest value kept exactly in its bucket; larger values are counted in
// the last bucket (and still reported exactly by Max). In nanoseconds it is about 73 minutes.
const MaxValue = int64(1)<<42 - 1

// numBuckets covers [0, MaxValue]: subCount exact buckets, then one group of subCount per
// power of two from 2^SubBits to 2^41.
const numBuckets = subCount + (42-SubBits)*subCount

// RelativeError is the bound on |reported-true|/true for Percentile, Min and Max excluded.
const RelativeError = 1.0 / (2 * subCount)

// Histogram counts non-negative int64 values (nanoseconds, by convention in this harness).
// The zero value is not usable; call New.
type Histogram struct {
	counts []uint64
	count  uint64
	sum    float64 // for Mean; float so a long run cannot overflow
	min    int64
	max    int64
}

// New returns an empty histogram.
func New() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf maps a value to its bucket index; negative values count as 0.
func bucketOf(v int64) int {
	if v < subCount*2 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v > MaxValue {
		v = MaxValue
	}
	m := bits.Len64(uint64(v)) - 1 // v in [2^m, 2^(m+1)), m >= SubBits+1
	shift := m - SubBits
	return subCount + shift*subCount + int(uint64(v)>>shift) - subCount
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width int64) {
	if i < subCount*2 {
		return int64(i), 1
	}
	g := i/subCount - 1 // the shift of this group
	sub := int64(i%subCount + subCount)
	return sub << g, int64(1) << g
}

// Record counts one value.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordN counts n occurrences of v.
func (h *Histogram) RecordN(v int64, n uint64) {
	if n == 0 {
		return
	}
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)] += n
	h.count += n
	h.sum += float64(v) * float64(n)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.count }

// Max returns the largest value recorded exactly, 0 when empty.
func (h *Histogram) Max() int64 {
	if h.count == 0 {
		return 0
	}
	return h.max
}

// Min returns the smallest value recorded exactly, 0 when empty.
func (h *Histogram) Min() int64 {
	if h.count == 0 {
		return 0
	}
	return h.min
}

// Mean returns the exact mean of the recorded values, 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count)
}

// Percentile returns the value at or below which q percent (0..100) of the values lie,
// within RelativeError. q <= 0 gives Min, q >= 100 gives Max; an empty histogram gives 0.
func (h *Histogram) Percentile(q float64) int64 {
	if h.count == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 100 {
		return h.max
	}
	// The rank of the wanted value, 1-based: the smallest r with r >= q% of count.
	rank := uint64(math.Ceil(q / 100 * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Merge adds every value of o to h. o is not changed.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.count, h.sum, h.min, h.max = 0, 0, math.MaxInt64, 0
}

// Clone returns an independent copy.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

// Bucket is one non-empty bucket for charts: values in [Lo, Lo+Width) were seen Count times.
type Bucket struct {
	Lo, Width int64
	Count     uint64
}

// Buckets returns the non-empty buckets in increasing order.
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	for i, c := range h.counts {
		if c != 0 {
			lo, w := bucketRange(i)
			out = append(out, Bucket{Lo: lo, Width: w, Count: c})
		}
	}
	return out
}
