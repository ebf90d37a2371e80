package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newLimiter(t testing.TB, o Options, now func() time.Time) *Limiter {
	t.Helper()
	env := filters.Env{Path: "routes[0]", Name: "demo.*", Options: encode(t, o), Metrics: metrics.NewSet(), Now: now}
	l, err := New(&env)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func reqFor(op, device string) *codec.Request {
	return &codec.Request{Operation: op, Header: codec.Header{{Key: "device-id", Value: device}, {Key: "app-id", Value: "wallet"}},
		Conn: codec.ConnInfo{ClientAddr: netip.MustParseAddrPort("10.0.0.1:4000")}}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Rate: "fast"}, `routes[0].filters[0].ratelimit.rate: "fast" is not a rate`},
		{Options{Rate: "10/d"}, `routes[0].filters[0].ratelimit.rate: "10/d": the unit`},
		{Options{Rate: "0/s"}, `routes[0].filters[0].ratelimit.rate: "0/s": the count`},
		{Options{Rate: "10/s", Burst: 1 << 62}, `routes[0].filters[0].ratelimit.burst: 4611686018427387904 is too large`},
		{Options{Rate: "-5/s"}, `routes[0].filters[0].ratelimit.rate: "-5/s": the count`},
		{Options{Rate: "1.5/s"}, `routes[0].filters[0].ratelimit.rate: "1.5/s": the count`},
		{Options{Rate: "10/s", Burst: -1}, `routes[0].filters[0].ratelimit.burst: -1 is negative`},
		{Options{Rate: "10/s", Key: "ip"}, `routes[0].filters[0].ratelimit.key: "ip" is not one of`},
		{Options{Rate: "10/s", MaxKeys: -3}, `routes[0].filters[0].ratelimit.max_keys: -3`},
	}
	for _, c := range cases {
		env := filters.Env{Path: "routes[0]", Options: encode(t, c.o), OptionsPath: "routes[0].filters[0].ratelimit"}
		if _, err := New(&env); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want prefix %q", c.o, err, c.want)
		}
	}
	env := filters.Env{Path: "routes[4]", OptionsPath: "routes[4].filters[1].ratelimit"}
	if _, err := New(&env); err == nil || !strings.HasPrefix(err.Error(), "routes[4].filters[1].ratelimit.rate: missing") {
		t.Errorf("missing options: %v", err)
	}
	// Options are decoded strictly: a misspelt one is named where it is written, with the
	// known ones (the error the brief of issue 13 asks for).
	env.Options = config.FilterOptions{"rate": "10/s", "burts": 5, "max_keys": "lots"}
	_, err := New(&env)
	for _, want := range []string{
		`routes[4].filters[1].ratelimit.burts: unknown option "burts" (known: rate, burst, key, max_keys, fail_open, dry_run, scope)`,
		"routes[4].filters[1].ratelimit.max_keys: cannot unmarshal !!str `lots` into int",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad options: %v, want %q", err, want)
		}
	}
}

func TestRefusalAnswer(t *testing.T) {
	clk := &clock{}
	l := newLimiter(t, Options{Rate: "1/m", Burst: 2}, clk.Now)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if resp := l.Receive(ctx, reqFor("demo.a", "d"), nil); resp != nil {
			t.Fatalf("request %d within burst refused", i)
		}
	}
	resp := l.Receive(ctx, reqFor("demo.a", "d"), nil)
	if resp == nil || resp.Status != 429 || resp.Header.Value("error") != codec.ErrRateLimited {
		t.Fatalf("over the limit: %+v", resp)
	}
	if ra := resp.Header.Value("retry-after"); ra != "60" {
		t.Fatalf("retry-after %q, want 60", ra)
	}
	clk.Add(30*time.Second + time.Millisecond)
	if ra := l.Receive(ctx, reqFor("demo.a", "d"), nil).Header.Value("retry-after"); ra != "30" {
		t.Fatalf("retry-after %q, want 30 (rounded up)", ra)
	}
	clk.Add(30 * time.Second)
	if l.Receive(ctx, reqFor("demo.a", "d"), nil) != nil {
		t.Fatal("refused after a token refilled")
	}
	if l.rejected.Get() != 2 {
		t.Fatalf("rejections counted %d", l.rejected.Get())
	}
	for _, c := range []struct {
		ns   int64
		want string
	}{{1, "1"}, {int64(time.Second), "1"}, {int64(time.Second) + 1, "2"}, {int64(90 * time.Second), "90"}} {
		if got := retryAfter(c.ns); got != c.want {
			t.Errorf("retryAfter(%d) = %s want %s", c.ns, got, c.want)
		}
	}
}

// TestRateHoldsOverTwoSeconds offers several times the rate, evenly, for two seconds of a
// fake clock, to several keys at once, and checks each key got burst + 2 s of rate within 2% (each key its own).
func TestRateHoldsOverTwoSeconds(t *testing.T) {
	for _, rate := range []int{10, 100, 1000, 20000} {
		for _, key := range []string{"api", "device", "client"} {
			t.Run(fmt.Sprintf("%d/s/%s", rate, key), func(t *testing.T) {
				clk := &clock{}
				burst := rate / 10
				if burst == 0 {
					burst = 1
				}
				l := newLimiter(t, Options{Rate: strconv.Itoa(rate) + "/s", Burst: burst, Key: key}, clk.Now)
				const keys = 3
				offered := 4 * rate * 2 // per key, over 2 s
				step := 2 * time.Second / time.Duration(offered)
				got := make([]int, keys)
				reqs := make([]*codec.Request, keys)
				for k := range reqs {
					reqs[k] = reqFor("demo.op"+strconv.Itoa(k), "dev-"+strconv.Itoa(k))
					reqs[k].Conn.ClientAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(k)}), 1)
				}
				for i := 0; i < offered; i++ {
					for k := range reqs {
						if l.Receive(context.Background(), reqs[k], nil) == nil {
							got[k]++
						}
					}
					clk.Add(step)
				}
				want := float64(burst + 2*rate)
				for k, g := range got {
					// 2%, or one token for the low rates: the last request comes one step
					// before the 2 s mark.
					if d := math.Abs(float64(g) - want); d > max(0.02*want, 1) {
						t.Errorf("key %d: %d allowed in 2 s, want %.0f ±2%%", k, g, want)
					}
				}
			})
		}
	}
}

// TestRateHoldsOnTheRealClock hammers one key from several goroutines for two real
// seconds; whatever the speed, the allowed count must not pass burst + rate × elapsed, and
// must reach it within 3% once the time nobody was calling (a loaded box starves the
// goroutines) is taken off: a pause longer than the burst's worth of time wastes tokens.
func TestRateHoldsOnTheRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("2 s")
	}
	const rate, burst = 2000, 100
	l := newLimiter(t, Options{Rate: "2000/s", Burst: burst, Key: "device"}, time.Now)
	start := time.Now()
	var allowed, last, idle atomic.Int64
	last.Store(start.UnixNano())
	full := int64(burst * time.Second / rate) // refill time of a whole burst
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := reqFor("demo.a", "dev-1")
			for {
				if time.Since(start) >= 2*time.Second {
					return
				}
				if l.Receive(context.Background(), req, nil) == nil {
					allowed.Add(1)
				}
				// Gaps between finished calls: a goroutine preempted while it holds the
				// bucket's lock stalls the others without their noticing.
				now := time.Now().UnixNano()
				if gap := now - last.Swap(now); gap > full {
					idle.Add(gap - full)
				}
			}
		}()
	}
	wg.Wait()
	// Until the last finished call: a goroutine starved before its final check stretches
	// the wall time without calling.
	elapsed := time.Duration(last.Load() - start.UnixNano()).Seconds()
	most := burst + rate*elapsed
	idleS := time.Duration(idle.Load()).Seconds()
	least := burst + rate*(elapsed-idleS)
	got := float64(allowed.Load())
	t.Logf("%.0f allowed in %.3f s (%.3f s starved); bounds %.0f..%.0f", got, elapsed, idleS, 0.97*least, most)
	// Never more than the rate allows: that holds however loaded the box is.
	if got > most+1 {
		t.Fatalf("%.0f allowed, more than %.0f", got, most)
	}
	// The floor is only meaningful when the callers actually ran: on a box loaded by other
	// tests they are starved in ways the gap accounting misses. The fake-clock test above
	// proves the floor exactly.
	if idleS < 0.1*elapsed && got < 0.97*least {
		t.Fatalf("%.0f allowed, fewer than %.0f", got, 0.97*least)
	}
}

// TestFloodOfKeysStaysBounded cycles a million device ids through a table of 10,000.
func TestFloodOfKeysStaysBounded(t *testing.T) {
	clk := &clock{}
	l := newLimiter(t, Options{Rate: "10/s", Burst: 5, Key: "device", MaxKeys: 10_000, FailOpen: true}, clk.Now)
	flood := func(n int, prefix string) {
		req := reqFor("demo.a", "")
		for i := 0; i < n; i++ {
			req.Header[0].Value = prefix + strconv.Itoa(i)
			l.Receive(context.Background(), req, nil)
			clk.Add(time.Microsecond)
		}
	}
	flood(20_000, "warm-")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	flood(1_000_000, "attacker-")
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.keys(); n > 10_000 {
		t.Fatalf("table holds %d keys", n)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Fatalf("heap grew by %d bytes over a full table", grew)
	}
}

// TestFullTableOfLiveBuckets: when every bucket still holds state, fail_open evicts (and
// counts degraded), fail_closed refuses the new key (and counts degraded).
func TestFullTableOfLiveBuckets(t *testing.T) {
	for _, failOpen := range []bool{true, false} {
		clk := &clock{}
		l := newLimiter(t, Options{Rate: "1/m", Burst: 1, Key: "device", MaxKeys: 10, FailOpen: failOpen}, clk.Now)
		for i := 0; i < 10; i++ {
			if l.Receive(context.Background(), reqFor("a", strconv.Itoa(i)), nil) != nil {
				t.Fatal("first request of a key refused")
			}
		}
		clk.Add(10 * time.Second)
		resp := l.Receive(context.Background(), reqFor("a", "new"), nil)
		if failOpen != (resp == nil) || l.counters.Degraded.Get() != 1 {
			t.Fatalf("failOpen=%v: resp %+v degraded %d", failOpen, resp, l.counters.Degraded.Get())
		}
		if !failOpen && resp.Header.Value("retry-after") != "50" {
			t.Fatalf("fail closed: retry-after %q, want 50 (until the oldest bucket is idle)", resp.Header.Value("retry-after"))
		}
		// Once buckets refilled, evicting them loses nothing: no degraded count.
		clk.Add(time.Minute)
		if l.Receive(context.Background(), reqFor("a", "later"), nil) != nil || l.counters.Degraded.Get() != 1 {
			t.Fatalf("failOpen=%v: idle eviction refused or counted", failOpen)
		}
	}
}

func TestDryRun(t *testing.T) {
	clk := &clock{}
	l := newLimiter(t, Options{Rate: "1/m", Burst: 1, DryRun: true}, clk.Now)
	for i := 0; i < 5; i++ {
		if l.Receive(context.Background(), reqFor("a", "d"), nil) != nil {
			t.Fatal("dry run refused")
		}
	}
	if l.counters.DryRunRejected.Get() != 4 || l.rejected.Get() != 0 {
		t.Fatalf("would-reject %d, rejected %d", l.counters.DryRunRejected.Get(), l.rejected.Get())
	}
}

func TestKeys(t *testing.T) {
	clk := &clock{}
	ctx := context.Background()
	for _, c := range []struct {
		key        string
		same, diff func(r *codec.Request)
	}{
		{"api", func(r *codec.Request) { r.Header[0].Value = "other" }, func(r *codec.Request) { r.Operation = "b" }},
		{"device", func(r *codec.Request) { r.Operation = "b" }, func(r *codec.Request) { r.Header[0].Value = "other" }},
		{"app", func(r *codec.Request) { r.Operation = "b" }, func(r *codec.Request) { r.Header[1].Value = "other" }},
		{"user", func(r *codec.Request) { r.Operation = "b" }, func(r *codec.Request) { r.Header = append(r.Header, codec.Field{Key: "user-id", Value: "u"}) }},
		{"client", func(r *codec.Request) { r.Conn.ClientAddr = netip.MustParseAddrPort("10.0.0.1:9") }, func(r *codec.Request) {
			r.Conn.ClientAddr = netip.MustParseAddrPort("10.0.0.2:4000")
		}},
	} {
		l := newLimiter(t, Options{Rate: "1/m", Burst: 1, Key: c.key}, clk.Now)
		if l.Receive(ctx, reqFor("a", "d"), nil) != nil {
			t.Fatal("first refused")
		}
		r := reqFor("a", "d")
		c.same(r)
		if l.Receive(ctx, r, nil) == nil {
			t.Errorf("key %s: same key not limited", c.key)
		}
		r = reqFor("a", "d")
		c.diff(r)
		if l.Receive(ctx, r, nil) != nil {
			t.Errorf("key %s: different key limited", c.key)
		}
	}
}

func TestNoAllocationsWhenAllowed(t *testing.T) {
	clk := &clock{}
	for _, key := range []string{"api", "device", "client", "long device"} {
		l := newLimiter(t, Options{Rate: "1000000000/s", Burst: 1000, Key: strings.TrimPrefix(key, "long ")}, clk.Now)
		req := reqFor("a", "d")
		if key == "long device" {
			req = reqFor("a", strings.Repeat("d", 1000))
		}
		l.Receive(context.Background(), req, nil)
		if n := testing.AllocsPerRun(1000, func() { l.Receive(context.Background(), req, nil); clk.Add(time.Microsecond) }); n != 0 {
			t.Errorf("key %s: %v allocations per allowed request", key, n)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"2000/s", "100/m", "5/h", "1000000000/s", "0/s", "/s", "1/", "fast", "1.5/s", "+1/s", "99999999999999999999/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		interval, oneSecond, err := parseRate(s)
		if err != nil {
			return
		}
		if interval < 1 || oneSecond < 1 || oneSecond > MaxRate {
			t.Fatalf("%q: interval %d, one second %d", s, interval, oneSecond)
		}
	})
}

func TestBucketsSurviveReload(t *testing.T) {
	clk := &clock{}
	reg := filters.NewRegistry()
	if err := reg.Register(Name, Factory); err != nil {
		t.Fatal(err)
	}
	o := Options{Rate: "1/m", Burst: 1, Key: "device"}
	env := filters.Env{Name: "demo.*", Options: encode(t, o), Now: clk.Now}
	c1, err := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: env.Options}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Receive(context.Background(), reqFor("a", "d"), nil) != nil {
		t.Fatal("first refused")
	}
	c2, _ := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: env.Options}}, env)
	if c2.Receive(context.Background(), reqFor("a", "d"), nil) == nil {
		t.Fatal("a reload handed the key a fresh burst")
	}
	o.MaxKeys = 50 // a different table shape: fresh buckets
	env.Options = encode(t, o)
	c3, _ := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: env.Options}}, env)
	if c3.Receive(context.Background(), reqFor("a", "d"), nil) != nil {
		t.Fatal("a resized table kept old buckets")
	}
	if n := reg.Sweep(); n != 0 {
		t.Fatalf("swept %d in use", n)
	}
	if n := reg.Sweep(); n != 2 {
		t.Fatalf("second sweep dropped %d, want both tables", n)
	}
}

func TestDefaultBurstIsOneSecond(t *testing.T) {
	for rate, want := range map[string]int{"2000/s": 2000, "100/m": 2, "5/h": 1} {
		clk := &clock{}
		l := newLimiter(t, Options{Rate: rate}, clk.Now)
		n := 0
		for l.Receive(context.Background(), reqFor("a", "d"), nil) == nil {
			n++
		}
		if n != want {
			t.Errorf("%s: burst %d, want %d", rate, n, want)
		}
	}
}

func BenchmarkTakeDistinctKeys(b *testing.B) {
	l := newLimiter(b, Options{Rate: "10/s", Key: "device", MaxKeys: 10_000, FailOpen: true}, time.Now)
	reqs := make([]*codec.Request, 1<<16)
	for i := range reqs {
		reqs[i] = reqFor("a", "dev-"+strconv.Itoa(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Receive(context.Background(), reqs[i&(len(reqs)-1)], nil)
		i++
	}
}

func TestLongKeysAreDigested(t *testing.T) {
	clk := &clock{}
	l := newLimiter(t, Options{Rate: "1/m", Burst: 1, Key: "device"}, clk.Now)
	long := strings.Repeat("d", 60000)
	if l.Receive(context.Background(), reqFor("a", long), nil) != nil {
		t.Fatal("first refused")
	}
	if l.Receive(context.Background(), reqFor("a", long), nil) == nil {
		t.Fatal("same long key not limited")
	}
	if l.Receive(context.Background(), reqFor("a", long+"x"), nil) != nil {
		t.Fatal("a different long key shared the bucket")
	}
	for i := range l.table.shards {
		for _, sl := range l.table.shards[i].slots {
			if len(sl.key) > maxKeyLen {
				t.Fatalf("a bucket keeps a %d-byte key", len(sl.key))
			}
		}
	}
}

// encode writes o as a config holds it.
func encode(t testing.TB, o Options) config.FilterOptions {
	t.Helper()
	fo, err := config.EncodeOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	return fo
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string][2]int64{"2000/s": {2000, int64(time.Second)}, "100/m": {100, int64(time.Minute)}, "5/h": {5, int64(time.Hour)}} {
		n, per, err := ParseRate(in)
		if err != nil || int64(n) != want[0] || int64(per) != want[1] {
			t.Errorf("%s: %d %v %v", in, n, per, err)
		}
	}
	for _, in := range []string{"", "/s", "0/s", "-1/s", "1/d", "1.5/s", "1/", "2000", "1000000001/s"} {
		if _, _, err := ParseRate(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
