package gateway

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRequestTasksLeaveNoGoroutines: once a burst of requests is answered, their
// goroutines are gone, not parked as idle pool workers for a second (which under an
// overload kept hundreds of them beside the few dozen requests in flight).
func TestRequestTasksLeaveNoGoroutines(t *testing.T) {
	g := startGateway(t, "{}", nil)
	addr := g.Addr("mobile").String()
	before := gatewayGoroutines()
	rs := mmtpBurst(t, addr, "demo.sleep", "50", 64)
	for _, r := range rs {
		if r.Status != 200 {
			t.Fatalf("burst: status %d %q", r.Status, r.Body)
		}
	}
	// The test client's goroutines go too; allow for them, not for one per request.
	deadline := time.Now().Add(300 * time.Millisecond)
	n := gatewayGoroutines()
	for n > before+16 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = gatewayGoroutines()
	}
	if n > before+16 {
		t.Errorf("300ms after a burst of 64 answered requests: %d goroutines, %d before it", n, before)
	}
	if r := g.reqPool.Running(); r != 0 {
		t.Errorf("request tasks running after the burst: %d", r)
	}
}

// gatewayGoroutines counts the goroutines of this test process but those of the
// in-process demo backend's HTTP server (one per keep-alive connection the upstream
// pool keeps open, as a real backend would have in its own process).
func gatewayGoroutines() int {
	buf := make([]byte, 4<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "created by net/http.(*Server).Serve") {
			n++
		}
	}
	return n
}
