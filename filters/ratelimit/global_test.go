package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/filters"
)

// downBackend is a fleet store that cannot be reached.
type downBackend struct{ calls int }

func (d *downBackend) Take(context.Context, string, int64, int64) (bool, time.Duration, error) {
	d.calls++
	return false, 0, errors.New("dial tcp: connection refused")
}

// TestGlobalFallsBackToLocal: with scope: global and the fleet's store unreachable, the
// instance's own bucket limits (the declared fallback), or with fail_open nothing does;
// both count degraded.
func TestGlobalFallsBackToLocal(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		clk := &clock{}
		set := metrics.NewSet()
		down := &downBackend{}
		o := Options{Rate: "1/m", Burst: 3, Scope: "global", FailOpen: failOpen}
		env := filters.Env{Path: "routes[0]", Name: "demo.*", Options: encode(t, o), OptionsPath: "routes[0].ratelimit",
			Metrics: set, Now: clk.Now, Fleet: &filters.Fleet{RateLimit: down}}
		l, err := New(&env)
		if err != nil {
			t.Fatal(err)
		}
		admitted := 0
		for i := 0; i < 6; i++ {
			if l.Receive(context.Background(), reqFor("demo.a", "d"), nil) == nil {
				admitted++
			}
		}
		want := 3
		if failOpen {
			want = 6
		}
		if admitted != want || down.calls != 6 {
			t.Fatalf("fail_open %v: %d of 6 admitted (store asked %d times), want %d", failOpen, admitted, down.calls, want)
		}
		var b strings.Builder
		set.WritePrometheus(&b)
		if !strings.Contains(b.String(), `degraded_total{filter="ratelimit",route="demo.*"} 6`) {
			t.Fatalf("degraded not counted:\n%s", b.String())
		}
	}
}

func TestGlobalNeedsFleet(t *testing.T) {
	o := Options{Rate: "10/s", Scope: "global"}
	env := filters.Env{Path: "routes[0]", Options: encode(t, o), OptionsPath: "routes[0].ratelimit"}
	if _, err := New(&env); err == nil || !strings.Contains(err.Error(), "routes[0].ratelimit.scope: global needs fleet.redis") {
		t.Fatalf("global without a fleet: %v", err)
	}
	o.Scope = "planet"
	env.Options = encode(t, o)
	if _, err := New(&env); err == nil || !strings.Contains(err.Error(), `"planet" is not local or global`) {
		t.Fatalf("bad scope: %v", err)
	}
}
