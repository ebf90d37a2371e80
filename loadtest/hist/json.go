package hist

import (
	"encoding/json"
	"fmt"
	"math"
)

// wire is the JSON form: only non-empty buckets, as [index, count] pairs, so a histogram of
// a few hundred distinct latencies is a few kilobytes whatever the range. Worker processes
// send their histograms to the parent in this form.
type wire struct {
	SubBits int         `json:"sub_bits"`
	Count   uint64      `json:"count"`
	Sum     float64     `json:"sum"`
	Min     int64       `json:"min"`
	Max     int64       `json:"max"`
	Buckets [][2]uint64 `json:"buckets"`
}

// MarshalJSON encodes the histogram sparsely.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	w := wire{SubBits: SubBits, Count: h.count, Sum: h.sum, Min: h.Min(), Max: h.Max(),
		Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote, checking it: the layout (sub_bits) must be
// this build's, indexes in range and strictly increasing, counts summing to count, and
// min/max inside the buckets they claim. A histogram from a worker is input like any other.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("histogram: %w", err)
	}
	if w.SubBits != SubBits {
		return fmt.Errorf("histogram: sub_bits %d, this build uses %d", w.SubBits, SubBits)
	}
	n := New()
	var total uint64
	prev := -1
	for k, p := range w.Buckets {
		if p[0] >= numBuckets {
			return fmt.Errorf("histogram: buckets[%d]: index %d out of range [0,%d)", k, p[0], numBuckets)
		}
		i := int(p[0])
		if i <= prev {
			return fmt.Errorf("histogram: buckets[%d]: index %d not above the previous %d", k, i, prev)
		}
		if p[1] == 0 {
			return fmt.Errorf("histogram: buckets[%d]: zero count", k)
		}
		if total+p[1] < total {
			return fmt.Errorf("histogram: buckets[%d]: count overflows", k)
		}
		prev = i
		n.counts[i] = p[1]
		total += p[1]
	}
	if total != w.Count {
		return fmt.Errorf("histogram: count %d, buckets sum to %d", w.Count, total)
	}
	if w.Count > 0 {
		if w.Min < 0 || w.Max < w.Min {
			return fmt.Errorf("histogram: min %d, max %d out of order", w.Min, w.Max)
		}
		if bucketOf(w.Min) != firstNonEmpty(n.counts) || bucketOf(w.Max) != prev {
			return fmt.Errorf("histogram: min %d or max %d outside the first/last bucket", w.Min, w.Max)
		}
		if math.IsNaN(w.Sum) || math.IsInf(w.Sum, 0) || w.Sum < 0 {
			return fmt.Errorf("histogram: sum %v invalid", w.Sum)
		}
		n.min, n.max, n.sum = w.Min, w.Max, w.Sum
	}
	n.count = w.Count
	*h = *n
	return nil
}

func firstNonEmpty(c []uint64) int {
	for i, v := range c {
		if v != 0 {
			return i
		}
	}
	return -1
}
