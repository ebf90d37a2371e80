package push

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_800_000_000_000)

// TestMemoryPerDevice measures the heap of 100k devices with one pending message each
// (docs/push.md quotes the figure): bytes per device beyond the body itself.
func TestMemoryPerDevice(t *testing.T) {
	const n = 100_000
	body := []byte("0123456789abcdef0123456789abcdef") // one shared body: the store's own cost
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := NewMemory(Limits{Budget: 1 << 30})
	for i := 0; i < n; i++ {
		k := Key{"app", "device-" + fmt.Sprintf("%08d", i)}
		if _, _, err := s.Append(k, Message{Topic: "order.paid", Body: body}, t0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d devices with one pending message: %.0f bytes/device of heap (keys included, body shared)", n, per)
	if st := s.Stats(); st.Devices != n || st.Pending != n {
		t.Fatalf("stats %+v", st)
	}
	if per > 1024 {
		t.Fatalf("%.0f bytes per device; the record should be a few hundred", per)
	}
	runtime.KeepAlive(s)
}
