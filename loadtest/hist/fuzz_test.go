package hist

import (
	"encoding/json"
	"testing"
)

// FuzzUnmarshal: whatever a worker sends, decoding either fails or yields a histogram whose
// summary is self-consistent and that re-encodes to something that decodes the same.
func FuzzUnmarshal(f *testing.F) {
	h := New()
	h.RecordN(1e6, 3)
	h.Record(42)
	seed, _ := json.Marshal(h)
	f.Add(seed)
	f.Add([]byte(`{"sub_bits":7,"count":0,"buckets":[]}`))
	f.Add([]byte(`{"sub_bits":7,"count":1,"min":1,"max":1,"buckets":[[1,1]]}`))
	f.Add([]byte(`{"sub_bits":7,"count":2,"min":1,"max":2,"buckets":[[2,1],[1,1]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var g Histogram
		if err := json.Unmarshal(b, &g); err != nil {
			return
		}
		if g.Count() > 0 && (g.Percentile(50) < g.Min() || g.Percentile(50) > g.Max()) {
			t.Fatalf("p50 %d outside [%d,%d]", g.Percentile(50), g.Min(), g.Max())
		}
		again, err := json.Marshal(&g)
		if err != nil {
			t.Fatal(err)
		}
		var g2 Histogram
		if err := json.Unmarshal(again, &g2); err != nil {
			t.Fatalf("re-decode: %v\n%s", err, again)
		}
		if g2.Count() != g.Count() || g2.Max() != g.Max() {
			t.Fatal("re-decode differs")
		}
	})
}
