package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
)

func TestValidSignaturesPass(t *testing.T) {
	for _, proto := range []codec.Protocol{codec.MMTP, codec.HTTP1} {
		t.Run(proto.String(), func(t *testing.T) {
			f := newFixture(t, &Options{Replay: true})
			s := f.good(proto)
			if resp := f.do(build(s)); resp.Status != 200 {
				t.Fatalf("valid request answered %d %s", resp.Status, resp.Body)
			}
			// Without a nonce on a route without replay protection, and shop's key from a file.
			f = newFixture(t, nil)
			s = f.good(proto)
			s.nonce = ""
			s.app, s.secret = "shop", shopSecret
			if resp := f.do(build(s)); resp.Status != 200 {
				t.Fatalf("valid request answered %d %s", resp.Status, resp.Body)
			}
			if f.calls != 1 {
				t.Fatalf("backend called %d times", f.calls)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	type tc struct {
		name   string
		mutate func(f *fixture, s *reqSpec)
		status int
		code   string
		reason string
	}
	cases := []tc{
		{"wrong secret", func(f *fixture, s *reqSpec) { s.secret = shopSecret }, 401, codec.ErrUnauthorized, "bad_sign"},
		{"tampered body", func(f *fixture, s *reqSpec) { s.signBody = s.body; s.body = `{"amount":1000}` }, 401, codec.ErrUnauthorized, "bad_sign"},
		{"tampered operation", func(f *fixture, s *reqSpec) { s.signOp = "demo.echo"; s.op = "demo.pay" }, 401, codec.ErrUnauthorized, "bad_sign"},
		{"stale timestamp", func(f *fixture, s *reqSpec) { s.ts = f.clk.MillisAt(-301 * time.Second) }, 401, codec.ErrUnauthorized, "stale_timestamp"},
		{"future timestamp", func(f *fixture, s *reqSpec) { s.ts = f.clk.MillisAt(301 * time.Second) }, 401, codec.ErrUnauthorized, "future_timestamp"},
		{"bad timestamp", func(f *fixture, s *reqSpec) { s.ts = "-12" }, 401, codec.ErrUnauthorized, "bad_timestamp"},
		{"huge timestamp", func(f *fixture, s *reqSpec) { s.ts = "99999999999999999999999" }, 401, codec.ErrUnauthorized, "bad_timestamp"},
		{"missing timestamp", func(f *fixture, s *reqSpec) { s.ts = "" }, 401, codec.ErrUnauthorized, "missing_timestamp"},
		{"missing app", func(f *fixture, s *reqSpec) { s.app = "" }, 401, codec.ErrUnauthorized, "missing_app_id"},
		{"missing device", func(f *fixture, s *reqSpec) { s.device = "" }, 401, codec.ErrUnauthorized, "missing_device_id"},
		{"missing sign", nil, 401, codec.ErrUnauthorized, "missing_sign"}, // nil: the test deletes the header
		{"unknown app", func(f *fixture, s *reqSpec) { s.app = "mallory" }, 401, codec.ErrUnauthorized, "unknown_app"},
		{"keyless app", func(f *fixture, s *reqSpec) { s.app = "keyless"; s.secret = "" }, 401, codec.ErrUnauthorized, "unknown_app"},
		{"missing nonce", func(f *fixture, s *reqSpec) { s.nonce = "" }, 401, codec.ErrUnauthorized, "missing_nonce"},
		{"uppercase sign", func(f *fixture, s *reqSpec) { s.overwrite = strings.Repeat("A", 64) }, 401, codec.ErrUnauthorized, "bad_sign"},
		{"api not allowed", func(f *fixture, s *reqSpec) { s.app, s.secret, s.op = "shop", shopSecret, "pay.now" }, 403, codec.ErrForbidden, "api_not_allowed"},
		{"identity mismatch app", func(f *fixture, s *reqSpec) { s.conn.AppID, s.conn.DeviceID = "shop", "dev-1" }, 401, codec.ErrUnauthorized, "identity_mismatch"},
		{"identity mismatch device", func(f *fixture, s *reqSpec) { s.conn.AppID, s.conn.DeviceID = "wallet", "dev-2" }, 401, codec.ErrUnauthorized, "identity_mismatch"},
	}
	for _, proto := range []codec.Protocol{codec.MMTP, codec.HTTP1} {
		for _, c := range cases {
			t.Run(proto.String()+"/"+c.name, func(t *testing.T) {
				f := newFixture(t, &Options{Replay: true})
				s := f.good(proto)
				var req *codec.Request
				if c.mutate != nil {
					c.mutate(f, &s)
					req = build(s)
				} else {
					req = build(s)
					req.Header.Del("sign")
				}
				resp := f.do(req)
				if resp.Status != c.status || resp.Header.Value("error") != c.code {
					t.Fatalf("got %d %q (%s), want %d %q", resp.Status, resp.Header.Value("error"), resp.Body, c.status, c.code)
				}
				if f.calls != 0 {
					t.Fatalf("backend reached %d times", f.calls)
				}
				if n := f.a.failures[reasonByLabel(t, c.reason)].Get(); n != 1 {
					t.Fatalf("reason %s counted %d", c.reason, n)
				}
				if n := f.a.rejected[reasonByLabel(t, c.reason)].Get(); n != 1 {
					t.Fatalf("rejection for %s counted %d", c.reason, n)
				}
			})
		}
	}
}

func reasonByLabel(t *testing.T, label string) reason {
	for r := reason(0); r < numReasons; r++ {
		if r.String() == label {
			return r
		}
	}
	t.Fatalf("no reason %q", label)
	return 0
}

func TestSkewBoundaryAndConfig(t *testing.T) {
	f := newFixture(t, &Options{Skew: config.Duration(10 * time.Second)})
	for _, d := range []time.Duration{-10 * time.Second, 10 * time.Second} {
		s := f.good(codec.MMTP)
		s.ts = f.clk.MillisAt(d)
		if resp := f.do(build(s)); resp.Status != 200 {
			t.Fatalf("timestamp %v away refused: %s", d, resp.Body)
		}
	}
	for _, d := range []time.Duration{-11 * time.Second, 11 * time.Second} {
		s := f.good(codec.MMTP)
		s.ts = f.clk.MillisAt(d)
		if resp := f.do(build(s)); resp.Status != 401 {
			t.Fatalf("timestamp %v away answered %d", d, resp.Status)
		}
	}
	env := f.env
	env.Path = "routes[2]"
	env.Options = encodeOptions(t, &Options{Skew: config.Duration(time.Millisecond)})
	env.OptionsPath = "routes[2].filters[0].auth"
	if _, err := New(&env); err == nil || !strings.HasPrefix(err.Error(), "routes[2].filters[0].auth.skew: ") {
		t.Fatalf("tiny skew: %v", err)
	}
	env.Options = config.FilterOptions{"skew": "10s", "replay": "yes please", "rplay": true}
	_, err := New(&env)
	for _, want := range []string{
		`routes[2].filters[0].auth.rplay: unknown option "rplay" (known: skew, replay, fail_open, dry_run)`,
		"routes[2].filters[0].auth.replay: cannot unmarshal",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad options: %v, want %q", err, want)
		}
	}
}

func TestReplayedNonce(t *testing.T) {
	for _, proto := range []codec.Protocol{codec.MMTP, codec.HTTP1} {
		f := newFixture(t, &Options{Replay: true})
		first := f.good(proto)
		if resp := f.do(build(first)); resp.Status != 200 {
			t.Fatalf("first: %d %s", resp.Status, resp.Body)
		}
		// The same signed request again, as an attacker would replay it.
		resp := f.do(build(first))
		if resp.Status != 401 || resp.Header.Value("error") != codec.ErrUnauthorized || string(resp.Body) != "replayed nonce" {
			t.Fatalf("replay answered %d %s", resp.Status, resp.Body)
		}
		// Another app may use the same nonce.
		s := f.good(proto)
		s.app, s.secret, s.nonce = "shop", shopSecret, first.nonce
		if resp := f.do(build(s)); resp.Status != 200 {
			t.Fatalf("same nonce, other app: %d %s", resp.Status, resp.Body)
		}
		// Once the window passed, the replay is refused by its stale timestamp.
		f.clk.Add(301 * time.Second)
		if resp := f.do(build(first)); resp.Status != 401 || string(resp.Body) == "replayed nonce" {
			t.Fatalf("late replay: %d %s", resp.Status, resp.Body)
		}
		if f.calls != 2 {
			t.Fatalf("backend called %d times, want 2", f.calls)
		}
	}
}

func TestHello(t *testing.T) {
	f := newFixture(t, nil)
	// The listener's HELLO check: an Authenticator without route options.
	env := f.env
	env.Path, env.Options = "listeners[0]", nil
	h, err := New(&env)
	if err != nil {
		t.Fatal(err)
	}
	hello := f.good(codec.MMTP)
	hello.op, hello.signOp, hello.body, hello.nonce = "", "mmtp.hello", "", ""
	if resp := h.Hello(context.Background(), build(hello)); resp != nil {
		t.Fatalf("valid HELLO refused: %d %s", resp.Status, resp.Body)
	}
	// Signed as a REQUEST instead of with mmtp.hello: refused.
	bad := hello
	bad.signOp = "demo.echo"
	if resp := h.Hello(context.Background(), build(bad)); resp == nil || resp.Status != 401 {
		t.Fatalf("HELLO signed with the wrong operation accepted")
	}
	bad = hello
	bad.secret = "guess"
	if resp := h.Hello(context.Background(), build(bad)); resp == nil || resp.Status != 401 {
		t.Fatalf("HELLO with a wrong secret accepted")
	}
	// A listener's auth in dry-run mode waves requests through, but its HELLO check
	// refuses: the identity a HELLO binds is trusted later.
	env.Options = encodeOptions(t, &Options{DryRun: true})
	dry, err := New(&env)
	if err != nil {
		t.Fatal(err)
	}
	if resp := dry.Hello(context.Background(), build(bad)); resp != nil {
		t.Fatalf("dry-run Authenticator refused a HELLO: it should only count")
	}
	if resp := dry.ForHello().Hello(context.Background(), build(bad)); resp == nil || resp.Status != 401 {
		t.Fatalf("ForHello of a dry-run Authenticator accepted a HELLO with a wrong secret")
	}
	// After HELLO the session binds the identity; REQUESTs may omit it.
	conn := codec.ConnInfo{AppID: "wallet", DeviceID: "dev-1"}
	s := f.good(codec.MMTP)
	s.nonce, s.omitIDs, s.conn = "", true, conn
	if resp := f.do(build(s)); resp.Status != 200 {
		t.Fatalf("request relying on HELLO refused: %d %s", resp.Status, resp.Body)
	}
	// ...but a REQUEST naming another device is refused.
	s = f.good(codec.MMTP)
	s.nonce, s.conn, s.device = "", conn, "dev-9"
	if resp := f.do(build(s)); resp.Status != 401 {
		t.Fatalf("mismatched device answered %d", resp.Status)
	}
	// No HELLO where one is required: the session answers with HelloRequired.
	resp := h.HelloRequired()
	if resp.Status != 401 || resp.Header.Value("error") != codec.ErrUnauthorized {
		t.Fatalf("HelloRequired: %d %v", resp.Status, resp.Header)
	}
	if h.failures[noHello].Get() != 1 {
		t.Fatal("no_hello not counted")
	}
	if r := HelloRequiredResponse(); r.Status != 401 {
		t.Fatal("HelloRequiredResponse")
	}
	if f.calls != 1 {
		t.Fatalf("backend called %d times", f.calls)
	}
}

func TestDryRun(t *testing.T) {
	f := newFixture(t, &Options{DryRun: true})
	s := f.good(codec.HTTP1)
	s.secret = "wrong"
	if resp := f.do(build(s)); resp.Status != 200 {
		t.Fatalf("dry run refused: %d", resp.Status)
	}
	if f.a.counters.DryRunRejected.Get() != 1 || f.a.rejected[badSign].Get() != 0 || f.a.failures[badSign].Get() != 1 {
		t.Fatal("dry run counted wrong")
	}
}

func TestNonceStoreFull(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		f := newFixture(t, &Options{Replay: true, FailOpen: failOpen})
		f.a.nonces = newNonceStore(nonceShards) // one nonce per shard
		refused := 0
		for i := 0; i < 4*nonceShards; i++ {
			s := f.good(codec.MMTP)
			s.nonce = "n-" + string(rune('a'+i%26)) + "-" + itoa(i)
			resp := f.do(build(s))
			switch resp.Status {
			case 200:
			case 503:
				if resp.Header.Value("error") != codec.ErrUnavailable {
					t.Fatalf("full store answered %v", resp.Header)
				}
				refused++
			default:
				t.Fatalf("answered %d %s", resp.Status, resp.Body)
			}
		}
		if n := f.a.nonces.len(); n > nonceShards {
			t.Fatalf("store holds %d > %d", n, nonceShards)
		}
		deg := f.a.counters.Degraded.Get()
		if deg == 0 || (failOpen && refused != 0) || (!failOpen && uint64(refused) != deg) {
			t.Fatalf("failOpen=%v: refused %d, degraded %d", failOpen, refused, deg)
		}
		// Once the window passed, expired entries make room again.
		f.clk.Add(10 * time.Minute)
		s := f.good(codec.MMTP)
		s.nonce = "after"
		if resp := f.do(build(s)); resp.Status != 200 {
			t.Fatalf("after expiry: %d", resp.Status)
		}
	}
}

func TestNonceStoreBoundedUnderFlood(t *testing.T) {
	st := newNonceStore(1000)
	now := int64(1_000_000)
	for i := 0; i < 100_000; i++ {
		st.remember("app", itoa(i), now+300_000, now)
	}
	if n := st.len(); n > 1000 {
		t.Fatalf("store grew to %d", n)
	}
}

func TestParseMillis(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "1764219600000": true, "": false, "+1": false, "-1": false, " 1": false, "1.5": false, "12345678901234567": false, "1234567890123456": true} {
		if _, got := parseMillis(s); got != want {
			t.Errorf("parseMillis(%q) ok=%v", s, got)
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// TestReplayStoreSurvivesReload rebuilds the route's chain, as a config reload does: a
// request seen before must still be refused as a replay after.
func TestReplayStoreSurvivesReload(t *testing.T) {
	f := newFixture(t, &Options{Replay: true})
	reg := filters.NewRegistry()
	if err := reg.Register(Name, Factory); err != nil {
		t.Fatal(err)
	}
	build1, err := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: f.env.Options}}, f.env)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.good(codec.HTTP1)
	if resp := build1.Receive(context.Background(), build(spec), &filters.Exchange{}); resp != nil {
		t.Fatalf("first: %d", resp.Status)
	}
	reg.Sweep()
	build2, err := reg.Build("routes[5]", []config.FilterUse{{Name: Name, Options: f.env.Options}}, f.env) // moved in the list, same label
	if err != nil {
		t.Fatal(err)
	}
	reg.Sweep()
	if resp := build2.Receive(context.Background(), build(spec), &filters.Exchange{}); resp == nil || resp.Status != 401 {
		t.Fatal("replay accepted after a reload")
	}
}

// TestJudgedAtArrival: the window is measured from when the request arrived (the
// gateway's reading), not from when the filter happens to run.
func TestJudgedAtArrival(t *testing.T) {
	f := newFixture(t, nil)
	s := f.good(codec.MMTP)
	s.nonce = ""
	arrived := f.clk.Now()
	f.clk.Add(10 * time.Minute) // e.g. a long wait for a worker
	req := build(s)
	x := &filters.Exchange{Start: arrived}
	if resp := f.chain.Receive(context.Background(), req, x); resp != nil {
		t.Fatalf("judged at run time: %d %s", resp.Status, resp.Body)
	}
	if resp := f.chain.Receive(context.Background(), req, &filters.Exchange{}); resp == nil {
		t.Fatal("without an arrival time the filter's clock should judge it stale")
	}
}

func TestAllowList(t *testing.T) {
	l := newAllowList([]string{"demo.echo", "pay.*"})
	for op, want := range map[string]bool{"demo.echo": true, "demo.echo2": false, "pay.x": true, "pay.x.y": true, "pay": false, "payx": false, "": false} {
		if got := l.allows(op); got != want {
			t.Errorf("allows(%q) = %v", op, got)
		}
	}
	if l := newAllowList(nil); !l.allows("anything") {
		t.Error("empty list should allow all")
	}
	if l := newAllowList([]string{"*"}); !l.allows("x.y") {
		t.Error("* should allow all")
	}
}

// TestHTTPHeaderNames: HTTP clients send App-Id, Device-Id, Timestamp, Nonce and Sign;
// the filter finds them whatever their case.
func TestHTTPHeaderNames(t *testing.T) {
	f := newFixture(t, &Options{Replay: true})
	req := build(f.good(codec.HTTP1))
	names := map[string]string{"app-id": "App-Id", "device-id": "Device-Id", "timestamp": "Timestamp", "nonce": "Nonce", "sign": "Sign"}
	for i := range req.Header {
		req.Header[i].Key = names[req.Header[i].Key]
	}
	if resp := f.do(req); resp.Status != 200 {
		t.Fatalf("canonical-case headers refused: %d %s", resp.Status, resp.Body)
	}
}

// TestNonceReplayIsGatewayWide: a nonce, when sent, is refused the second time for its
// app on any route and on HELLO too, even where the route does not require nonces
// (mmtp.md: "already seen for that app inside that window — on any connection").
func TestNonceReplayIsGatewayWide(t *testing.T) {
	f := newFixture(t, nil) // no replay option: nonces optional
	reg := filters.NewRegistry()
	if err := reg.Register(Name, Factory); err != nil {
		t.Fatal(err)
	}
	env := f.env
	env.State = reg.State()
	routeA, err := reg.Build("routes[0]", []config.FilterUse{{Name: Name, Options: env.Options}}, env)
	if err != nil {
		t.Fatal(err)
	}
	env.Name = "other.*"
	routeB, err := reg.Build("routes[1]", []config.FilterUse{{Name: Name, Options: env.Options}}, env)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.good(codec.MMTP)
	if resp := routeA.Receive(context.Background(), build(spec), &filters.Exchange{}); resp != nil {
		t.Fatalf("first: %d %s", resp.Status, resp.Body)
	}
	if resp := routeB.Receive(context.Background(), build(spec), &filters.Exchange{}); resp == nil || string(resp.Body) != "replayed nonce" {
		t.Fatalf("same nonce on another route: %v", resp)
	}
	// Without a nonce a request still passes where the route does not ask for one.
	spec = f.good(codec.MMTP)
	spec.nonce = ""
	if resp := routeA.Receive(context.Background(), build(spec), &filters.Exchange{}); resp != nil {
		t.Fatalf("no nonce: %d %s", resp.Status, resp.Body)
	}
	// A HELLO replayed on another connection is refused.
	helloEnv := f.env
	helloEnv.State = reg.State()
	a, err := New(&helloEnv)
	if err != nil {
		t.Fatal(err)
	}
	h := f.good(codec.MMTP)
	h.op, h.signOp, h.body = "", "mmtp.hello", ""
	if resp := a.Hello(context.Background(), build(h)); resp != nil {
		t.Fatalf("hello: %d %s", resp.Status, resp.Body)
	}
	if resp := a.Hello(context.Background(), build(h)); resp == nil || resp.Status != 401 {
		t.Fatalf("replayed hello accepted: %v", resp)
	}
}
