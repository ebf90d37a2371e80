package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// The secrets are distinctive so that a leak anywhere is found by a plain search.
const (
	walletSecret = "wallet-Secret-7c1e9a4f0b"
	fileSecret   = "file-Secret-3d5b8e2a61"
	inlineSecret = "inline-Secret-90ab17c3e5"
)

// authConfig has two MMTP listeners (one requiring HELLO), an HTTP listener, the app
// "wallet" (secret from the environment, may call pay.* only) and the app "filed"
// (secret from a file). pay.* checks signatures with replay protection and a 10 s
// window; vault.* checks them too but wallet may not call it.
func authConfig(backendAddr, secretFile, extra string) string {
	return fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
log: {level: debug}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
  - {name: strict, listen: 127.0.0.1:0, protocol: mmtp, require_hello: true}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
apps:
  - {id: wallet, secret_env: WALLET_SECRET, apis: ["pay.*"]}
  - {id: filed, secret_file: %q}
  - {id: inline, secret: %q}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {api: "pay.*", split: {pay: 100}, filters: [auth], auth: {skew: 10s, replay: true}}
  - {api: "vault.*", split: {pay: 100}, filters: [auth]}
  - {api: "try.*", split: {pay: 100}, filters: [auth], auth: {dry_run: true}}
%s`, secretFile, inlineSecret, backendAddr, extra)
}

func startAuthGateway(t *testing.T, extra string) *gw {
	t.Helper()
	_, baddr := backend(t, "pay")
	sf := filepath.Join(t.TempDir(), "filed.secret")
	if err := os.WriteFile(sf, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return serve(t, authConfig(baddr, sf, extra), "WALLET_SECRET="+walletSecret)
}

// scrape returns the gateway's /metrics text.
func (g *gw) scrape(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + g.addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	return readAll(t, resp.Body)
}

// metric sums the values of every series whose name-and-labels start with prefix.
func metric(text, prefix string) float64 {
	var sum float64
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// upstreamCalls is how many requests the gateway sent to cluster pay.
func (g *gw) upstreamCalls(t testing.TB) float64 {
	return metric(g.scrape(t), `mgw_upstream_requests_total{cluster="pay"`)
}

// sigConn is a hand-driven MMTP connection, for frames the client library would not
// send (a body other than the one signed, no app-id after HELLO, a replayed frame).
type sigConn struct {
	t    testing.TB
	conn net.Conn
	dec  *mmtp.Decoder
	next uint32
}

func (g *gw) sigConn(t testing.TB, listener string) *sigConn {
	t.Helper()
	c, err := net.Dial("tcp", g.addrs[listener])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sigConn{t: t, conn: c, dec: mmtp.NewDecoder(nil)}
}

type answer struct {
	status int
	code   string
	body   string
	header codec.Header
}

// send writes one frame and returns the RESPONSE on its stream.
func (r *sigConn) send(frame func(stream uint32) []byte) answer {
	r.t.Helper()
	r.next++
	id := r.next
	if _, err := r.conn.Write(frame(id)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
	r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		f, err := r.dec.ReadFrame(r.conn)
		if err != nil {
			r.t.Fatalf("read response to stream %d: %v", id, err)
		}
		if f.Type != mmtp.TypeResponse || f.StreamID != id {
			continue
		}
		st, err := mmtp.ResponseStatus(&f)
		if err != nil {
			r.t.Fatalf("response status: %v", err)
		}
		a := answer{status: st, body: string(f.Body)}
		f.Each(func(k, v []byte) bool {
			a.header = append(a.header, codec.Field{Key: string(k), Value: string(v)})
			return true
		})
		a.code = a.header.Value("error")
		return a
	}
}

// signed describes one signed frame; the zero values of the knobs make a valid one.
type signed struct {
	op         string // "" for a HELLO
	app, dev   string // as sent; "" omits the header
	signApp    string // the identity the signature uses when app/dev are omitted
	signDev    string
	secret     string
	body       string
	sentBody   *string // when set, the bytes sent instead of body (tampering)
	skew       time.Duration
	nonce      string
	noNonce    bool // send and sign no nonce (else one is made up when nonce is "")
	timestamp  string
	emptyOp    bool    // sign op "" as is (a proxied HTTP request), not as a HELLO
	signedWith *string // out: the sign value used
}

func (s *signed) fields() (codec.Header, []byte) {
	ts := s.timestamp
	if ts == "" {
		ts = strconv.FormatInt(time.Now().Add(s.skew).UnixMilli(), 10)
		s.timestamp = ts
	}
	if s.nonce == "" && !s.noNonce {
		s.nonce = fmt.Sprintf("n-%d", time.Now().UnixNano())
	}
	app, dev := s.app, s.dev
	if app == "" {
		app = s.signApp
	}
	if dev == "" {
		dev = s.signDev
	}
	op := s.op
	if op == "" && !s.emptyOp {
		op = mmtp.HelloOperation
	}
	sign := mmtp.Sign([]byte(s.secret), &mmtp.SignFields{Operation: op, AppID: app, DeviceID: dev,
		Timestamp: ts, Nonce: s.nonce, Body: []byte(s.body)})
	if s.signedWith != nil {
		*s.signedWith = sign
	}
	var h codec.Header
	if s.app != "" {
		h = append(h, codec.Field{Key: "app-id", Value: s.app})
	}
	if s.dev != "" {
		h = append(h, codec.Field{Key: "device-id", Value: s.dev})
	}
	h = append(h, codec.Field{Key: "timestamp", Value: ts})
	if s.nonce != "" {
		h = append(h, codec.Field{Key: "nonce", Value: s.nonce})
	}
	h = append(h, codec.Field{Key: "sign", Value: sign})
	body := []byte(s.body)
	if s.sentBody != nil {
		body = []byte(*s.sentBody)
	}
	return h, body
}

// frame encodes s as a REQUEST (or a HELLO when op is empty).
func (s signed) frame() func(uint32) []byte {
	h, body := s.fields()
	if s.op == "" {
		return func(id uint32) []byte { return mmtp.AppendFrame(nil, mmtp.TypeHello, 0, id, h, body) }
	}
	return func(id uint32) []byte { return mmtp.AppendRequest(nil, id, s.op, h, body, false) }
}

func strp(s string) *string { return &s }

// expectRefused sends frame and checks the answer and that the backend saw nothing, and
// that the auth filter counted the refusal under reason.
func expectRefused(t *testing.T, g *gw, r *sigConn, name string, frame func(uint32) []byte, status int, code, reason string) {
	t.Helper()
	before := g.scrape(t)
	a := r.send(frame)
	if a.status != status || a.code != code {
		t.Errorf("%s: answered %d %q (%q), want %d %q", name, a.status, a.code, a.body, status, code)
	}
	after := g.scrape(t)
	up := `mgw_upstream_requests_total{cluster="pay"`
	if d := metric(after, up) - metric(before, up); d != 0 {
		t.Errorf("%s: the backend was called %v times", name, d)
	}
	if reason != "" {
		series := `mgw_auth_failures_total{route=`
		f := func(text string) float64 {
			var sum float64
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(l, series) && strings.Contains(l, `reason="`+reason+`"`) {
					v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
					sum += v
				}
			}
			return sum
		}
		if d := f(after) - f(before); d != 1 {
			t.Errorf("%s: mgw_auth_failures_total{reason=%q} grew by %v, want 1", name, reason, d)
		}
	}
}

func TestAuthMMTP(t *testing.T) {
	g := startAuthGateway(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The client library: signed HELLO, then signed calls carrying app and device.
	c := g.mmtpClient(t, "mobile", client.Options{AppID: "wallet", DeviceID: "dev-1",
		Secret: []byte(walletSecret), Hello: true})
	n0 := g.upstreamCalls(t)
	for i := range 3 {
		body := fmt.Sprintf("pay %d", i)
		resp, err := c.Call(ctx, "pay.demo.echo", nil, []byte(body))
		if err != nil || resp.Status != 200 || !reached(string(resp.Body), "pay.demo.echo", body) {
			t.Fatalf("signed call %d: %v %v", i, resp, err)
		}
	}
	// A gzip body is signed as sent, compressed.
	resp, err := c.CallGzip(ctx, "pay.demo.echo", nil, []byte(strings.Repeat("zip", 100)))
	if err != nil || resp.Status != 200 {
		t.Fatalf("signed gzip call: %v %v", resp, err)
	}
	if n := g.upstreamCalls(t); n != n0+4 {
		t.Fatalf("backend saw %v calls, want %v", n, n0+4)
	}
	// The inline secret works too.
	ci := g.mmtpClient(t, "mobile", client.Options{AppID: "inline", DeviceID: "dev-i", Secret: []byte(inlineSecret), Hello: true})
	if resp, err := ci.Call(ctx, "pay.demo.echo", nil, []byte("x")); err != nil || resp.Status != 200 {
		t.Fatalf("inline-secret app: %v %v", resp, err)
	}

	// Requests relying on the HELLO: no app-id or device-id, signed with the HELLO's.
	r := g.sigConn(t, "mobile")
	if a := r.send(signed{app: "wallet", dev: "dev-2", secret: walletSecret}.frame()); a.status != 200 {
		t.Fatalf("HELLO: %+v", a)
	}
	bound := signed{op: "pay.demo.echo", signApp: "wallet", signDev: "dev-2", secret: walletSecret, body: "bound"}
	if a := r.send(bound.frame()); a.status != 200 || !reached(a.body, "pay.demo.echo", "bound") {
		t.Fatalf("request relying on HELLO: %+v", a)
	}
	// The identity the request relies on must be the one it was signed with.
	expectRefused(t, g, r, "signed for another device than the HELLO's",
		signed{op: "pay.demo.echo", signApp: "wallet", signDev: "dev-9", secret: walletSecret}.frame(), 401, codec.ErrUnauthorized, "bad_sign")
	expectRefused(t, g, r, "naming another device than the HELLO's",
		signed{op: "pay.demo.echo", app: "wallet", dev: "dev-9", secret: walletSecret}.frame(), 401, codec.ErrUnauthorized, "")

	// Each failure, on a connection without HELLO (the identity in each request).
	u := g.sigConn(t, "mobile")
	ok := func() signed {
		return signed{op: "pay.demo.echo", app: "wallet", dev: "dev-3", secret: walletSecret, body: "amount=1"}
	}
	if a := u.send(ok().frame()); a.status != 200 || !reached(a.body, "pay.demo.echo", "amount=1") {
		t.Fatalf("valid signed request without HELLO: %+v", a)
	}
	s := ok()
	s.secret = "not-the-secret"
	expectRefused(t, g, u, "wrong secret", s.frame(), 401, codec.ErrUnauthorized, "bad_sign")
	s = ok()
	s.secret = fileSecret // another app's secret
	expectRefused(t, g, u, "another app's secret", s.frame(), 401, codec.ErrUnauthorized, "bad_sign")
	s = ok()
	s.sentBody = strp("amount=1000")
	expectRefused(t, g, u, "tampered body", s.frame(), 401, codec.ErrUnauthorized, "bad_sign")
	s = ok()
	s.skew = -11 * time.Second
	expectRefused(t, g, u, "stale timestamp", s.frame(), 401, codec.ErrUnauthorized, "stale_timestamp")
	s = ok()
	s.skew = 11 * time.Second
	expectRefused(t, g, u, "future timestamp", s.frame(), 401, codec.ErrUnauthorized, "future_timestamp")
	s = ok()
	s.app = "nobody"
	expectRefused(t, g, u, "unknown app", s.frame(), 401, codec.ErrUnauthorized, "unknown_app")
	noSign := func(id uint32) []byte {
		return mmtp.AppendRequest(nil, id, "pay.demo.echo", codec.Header{{Key: "app-id", Value: "wallet"},
			{Key: "device-id", Value: "dev-3"}, {Key: "timestamp", Value: strconv.FormatInt(time.Now().UnixMilli(), 10)},
			{Key: "nonce", Value: "x"}}, nil, false)
	}
	expectRefused(t, g, u, "no sign", noSign, 401, codec.ErrUnauthorized, "missing_sign")
	s = ok()
	s.op = "vault.demo.echo"
	expectRefused(t, g, u, "API not in the app's allow-list", s.frame(), 403, codec.ErrForbidden, "api_not_allowed")

	// A replayed nonce: the first use passes, the same frame again is refused, on this
	// connection and on another one.
	s = ok()
	s.body = "once"
	replay := s.frame()
	if a := u.send(replay); a.status != 200 || !reached(a.body, "pay.demo.echo", "once") {
		t.Fatalf("first use of a nonce: %+v", a)
	}
	expectRefused(t, g, u, "replayed nonce", replay, 401, codec.ErrUnauthorized, "replayed_nonce")
	u2 := g.sigConn(t, "mobile")
	expectRefused(t, g, u2, "replayed nonce on another connection", replay, 401, codec.ErrUnauthorized, "replayed_nonce")

	// A HELLO signed with the wrong secret binds nothing: requests relying on it fail.
	h := g.sigConn(t, "mobile")
	if a := h.send(signed{app: "wallet", dev: "dev-4", secret: "not-the-secret"}.frame()); a.status != 401 || a.code != codec.ErrUnauthorized {
		t.Fatalf("HELLO with a wrong secret: %+v", a)
	}
	expectRefused(t, g, h, "relying on a refused HELLO",
		signed{op: "pay.demo.echo", signApp: "wallet", signDev: "dev-4", secret: walletSecret}.frame(), 401, codec.ErrUnauthorized, "missing_app_id")

	// require_hello: a REQUEST before HELLO is refused even when signed, then accepted
	// once the HELLO is.
	st := g.sigConn(t, "strict")
	expectRefused(t, g, st, "REQUEST before HELLO on a require_hello listener", ok().frame(), 401, codec.ErrUnauthorized, "")
	if a := st.send(signed{app: "wallet", dev: "dev-5", secret: walletSecret}.frame()); a.status != 200 {
		t.Fatalf("HELLO on strict: %+v", a)
	}
	if a := st.send(signed{op: "pay.demo.echo", signApp: "wallet", signDev: "dev-5", secret: walletSecret, body: "ok"}.frame()); a.status != 200 {
		t.Fatalf("request after HELLO on strict: %+v", a)
	}

	// The client library's own HELLO with a wrong secret fails the dial.
	if _, err := client.Dial(ctx, g.addrs["mobile"], client.Options{AppID: "wallet", DeviceID: "d",
		Secret: []byte("not-the-secret"), Hello: true}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("dial with a wrong secret: %v", err)
	}

	assertNoSecret(t, g)
}

func TestAuthHTTPWithCurl(t *testing.T) {
	g := startAuthGateway(t, "")
	url := "http://" + g.addrs["web"] + "/api/pay.demo.echo"
	curlSigned := func(s signed) (string, error) {
		h, body := s.fields()
		args := []string{"-i", "--data-binary", string(body), url}
		for _, f := range h {
			args = append(args, "-H", httpName(f.Key)+": "+f.Value)
		}
		return curl(t, args...)
	}
	n0 := g.upstreamCalls(t)
	out, err := curlSigned(signed{op: "pay.demo.echo", app: "wallet", dev: "web-1", secret: walletSecret, body: "via curl"})
	_, backendSaw, _ := strings.Cut(out, "\r\n\r\n")
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 200") || !reached(backendSaw, "pay.demo.echo", "via curl") {
		t.Fatalf("valid signed curl: %q %v", out, err)
	}
	if n := g.upstreamCalls(t); n != n0+1 {
		t.Fatalf("backend saw %v calls, want %v", n, n0+1)
	}
	bad := []struct {
		name string
		s    signed
		want string
	}{
		{"wrong secret", signed{op: "pay.demo.echo", app: "wallet", dev: "web-1", secret: "nope", body: "x"}, "HTTP/1.1 401"},
		{"tampered body", signed{op: "pay.demo.echo", app: "wallet", dev: "web-1", secret: walletSecret, body: "x", sentBody: strp("y")}, "HTTP/1.1 401"},
		{"stale", signed{op: "pay.demo.echo", app: "wallet", dev: "web-1", secret: walletSecret, body: "x", skew: -time.Minute}, "HTTP/1.1 401"},
	}
	for _, b := range bad {
		out, err := curlSigned(b.s)
		if err != nil || !strings.HasPrefix(out, b.want) || !strings.Contains(out, "Error: "+codec.ErrUnauthorized) {
			t.Errorf("%s over HTTP: %q %v", b.name, out, err)
		}
	}
	// Unsigned: refused too.
	out, err = curl(t, "-i", "-d", "x", url)
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 401") {
		t.Errorf("unsigned curl: %q %v", out, err)
	}
	if n := g.upstreamCalls(t); n != n0+1 {
		t.Fatalf("refused HTTP requests reached the backend: %v calls, want %v", n, n0+1)
	}
	assertNoSecret(t, g)
}

// reached reports whether body is the demo backend's description of a request for op
// with a body of len(sent) bytes, and without the signature headers the gateway strips.
func reached(body, op, sent string) bool {
	var d struct {
		Path      string              `json:"path"`
		Headers   map[string][]string `json:"headers"`
		BodyBytes int                 `json:"body_bytes"`
	}
	if json.Unmarshal([]byte(body), &d) != nil || d.Path != "/"+op || d.BodyBytes != len(sent) {
		return false
	}
	_, sign := d.Headers["Sign"]
	_, nonce := d.Headers["Nonce"]
	return !sign && !nonce
}

// httpName turns an MMTP header key into the HTTP spelling (app-id -> App-Id).
func httpName(k string) string {
	parts := strings.Split(k, "-")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}

// assertNoSecret looks for either app secret, raw or hex, in the admin API's config,
// stats and metrics and in everything the gateway printed (at debug level, after failed
// requests).
func assertNoSecret(t *testing.T, g *gw) {
	t.Helper()
	var sources []struct{ name, text string }
	for _, p := range []string{"/v1/config", "/v1/stats", "/metrics", "/v1/routes", "/v1/clusters"} {
		resp, err := http.Get("http://" + g.addrs["admin"] + p)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		sources = append(sources, struct{ name, text string }{p, readAll(t, resp.Body)})
		resp.Body.Close()
	}
	out := g.output()
	if !strings.Contains(out, "auth refused") {
		t.Errorf("the debug log has no auth refusal; is log level debug? output:\n%s", out)
	}
	sources = append(sources, struct{ name, text string }{"gateway output", out})
	for _, src := range sources {
		for _, sec := range []string{walletSecret, fileSecret, inlineSecret} {
			for _, form := range []string{sec, hex.EncodeToString([]byte(sec)), strings.ToUpper(hex.EncodeToString([]byte(sec)))} {
				if strings.Contains(src.text, form) {
					t.Errorf("%s contains a secret (%.8s...)", src.name, form)
				}
			}
		}
	}
	// The config still says where the secrets come from.
	if !strings.Contains(sources[0].text, "WALLET_SECRET") {
		t.Errorf("/v1/config lost the secret's source:\n%s", sources[0].text)
	}
}

func TestRateLimitThroughTheGateway(t *testing.T) {
	_, baddr := backend(t, "rl")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_in_flight: 256}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {api: "rl.*", split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 50/s, burst: 10, key: device}}
  - {api: "dry.*", split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 50/s, burst: 10, key: device, dry_run: true}}
  - {api: "slow.*", split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 1/m, burst: 1, key: device}}
  - {api: "fast.*", split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 100/s, burst: 20, key: device}}
  - {api: "many.*", split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 50/s, burst: 10, key: device, max_keys: 100}}
`, baddr))
	c := g.mmtpClient(t, "mobile", client.Options{})
	call := func(op, dev string) *codec.Response {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, op, codec.Header{{Key: "device-id", Value: dev}}, []byte("x"))
		if err != nil {
			t.Errorf("call %s: %v", op, err)
			return &codec.Response{}
		}
		return resp
	}

	// One device floods each of two routes (50/s burst 10, 100/s burst 20) for ~2 s from
	// several goroutines at once; each accepts burst + rate*elapsed.
	type result struct {
		accepted, refused atomic.Int64
		bad               atomic.Value
		mu                sync.Mutex
		sent, recv        []time.Duration // each request's send and answer, after start
	}
	flood := func(op string, start time.Time, r *result, wg *sync.WaitGroup) {
		defer wg.Done()
		for time.Since(start) < 2*time.Second {
			sent := time.Since(start)
			resp := call(op, "dev-a")
			recv := time.Since(start)
			r.mu.Lock()
			r.sent, r.recv = append(r.sent, sent), append(r.recv, recv)
			r.mu.Unlock()
			switch {
			case resp.Status == 200:
				r.accepted.Add(1)
			case resp.Status == 429 && resp.Header.Value("error") == codec.ErrRateLimited && resp.Header.Value("retry-after") != "":
				r.refused.Add(1)
			default:
				r.bad.Store(fmt.Sprintf("%d %v %q", resp.Status, resp.Header, resp.Body))
			}
		}
	}
	rates := []struct {
		op   string
		rate float64
		r    result
	}{{op: "rl.demo.echo", rate: 50}, {op: "fast.demo.echo", rate: 100}}
	// Warm the routes' code paths and backend connections with another device.
	for i := range rates {
		call(rates[i].op, "warm-up")
	}
	n1 := g.upstreamCalls(t)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range rates {
		for range 3 {
			wg.Add(1)
			go flood(rates[i].op, start, &rates[i].r, &wg)
		}
	}
	wg.Wait()
	var total float64
	n0 := n1
	for i := range rates {
		r := &rates[i].r
		if v := r.bad.Load(); v != nil {
			t.Fatalf("%s: unexpected answer: %v", rates[i].op, v)
		}
		// The gateway saw the flood's first request after the first send and before the
		// first answer, its last one after the last send and before the last answer: the
		// window it limited over lies between these two spans.
		firstSend, lastSend := slices.Min(r.sent), slices.Max(r.sent)
		firstRecv, lastRecv := slices.Min(r.recv), slices.Max(r.recv)
		burst := 0.2 * rates[i].rate // 10 at 50/s, 20 at 100/s
		lo := burst + rates[i].rate*(lastSend-firstRecv).Seconds()
		hi := burst + rates[i].rate*(lastRecv-firstSend).Seconds()
		got := float64(r.accepted.Load())
		total += got
		slices.Sort(r.sent)
		var gap time.Duration
		for k := 1; k < len(r.sent); k++ {
			gap = max(gap, r.sent[k]-r.sent[k-1])
		}
		t.Logf("%s at %v/s: %v accepted (want %.1f..%.1f), %d refused, longest pause between sends %v",
			rates[i].op, rates[i].rate, got, lo, hi, r.refused.Load(), gap)
		// Never more than the limit allows.
		if got > hi*1.03+1 {
			t.Errorf("%s: accepted %v, want at most %.1f (+3%%)", rates[i].op, got, hi)
		}
		// Not fewer either, as long as the flood kept the bucket from filling up: a pause
		// longer than burst/rate (200 ms here) wastes tokens, which is the limit working,
		// not failing. Only an overloaded test machine pauses that long.
		if gap < 100*time.Millisecond && r.refused.Load() >= int64(hi) {
			if got < lo*0.97-1 {
				t.Errorf("%s: accepted %v, want at least %.1f (-3%%)", rates[i].op, got, lo)
			}
		} else {
			t.Logf("%s: the flood paused %v (or was refused only %d times): lower bound not checked", rates[i].op, gap, r.refused.Load())
		}
	}
	// Refusals never reach the backend.
	if n := g.upstreamCalls(t); n != n0+total {
		t.Errorf("backend saw %v calls, want exactly the %v accepted", n-n0, total)
	}

	// Another device has its own bucket: its whole burst passes while dev-a is refused.
	for i := range 10 {
		if resp := call("rl.demo.echo", "dev-b"); resp.Status != 200 {
			t.Fatalf("dev-b request %d: %d %v", i, resp.Status, resp.Header)
		}
	}
	// Drain dev-a's bucket (refill since the flood) and see it refused, with the hint.
	var r *codec.Response
	for range 100 {
		if r = call("rl.demo.echo", "dev-a"); r.Status == 429 {
			break
		}
	}
	if r.Status != 429 || r.Header.Value("retry-after") != "1" {
		t.Fatalf("dev-a after the flood: %d %v", r.Status, r.Header)
	}
	// The same refusal over HTTP carries Retry-After, here from a 1/m route (curl is too
	// slow to outrun 50/s).
	url := "http://" + g.addrs["web"] + "/api/slow.demo.echo"
	if out, err := curl(t, "-i", "-H", "Device-Id: dev-h", "-d", "x", url); err != nil || !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("first HTTP request on a 1/m route: %q %v", out, err)
	}
	out, err := curl(t, "-i", "-H", "Device-Id: dev-h", "-d", "x", url)
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 429") || !regexp.MustCompile(`(?i)\r\nretry-after: (59|60)\r\n`).MatchString(out) ||
		!strings.Contains(out, "Error: "+codec.ErrRateLimited) {
		t.Fatalf("HTTP refusal: %q %v", out, err)
	}

	// A flood of distinct device ids holds at most max_keys buckets.
	var served atomic.Int64
	var fwg sync.WaitGroup
	for w := range 4 {
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			for i := range 250 {
				if call("many.demo.echo", fmt.Sprintf("flood-%d-%d", w, i)).Status == 200 {
					served.Add(1)
				}
			}
		}()
	}
	fwg.Wait()
	text := g.scrape(t)
	if keys := metric(text, `mgw_ratelimit_keys{route="many.*"}`); keys < 1 || keys > 100 {
		t.Errorf("1000 distinct devices left %v buckets, want at most max_keys 100", keys)
	}
	if served.Load() == 0 {
		t.Errorf("no distinct device was served")
	}
	t.Logf("1000 distinct devices: %d served, %v degraded", served.Load(),
		metric(text, `mgw_filter_degraded_total{filter="ratelimit",route="many.*"}`))

	// dry_run: nothing is refused, what would have been is counted.
	const n = 60
	for i := range n {
		if resp := call("dry.demo.echo", "dev-c"); resp.Status != 200 {
			t.Fatalf("dry-run request %d: %d %v", i, resp.Status, resp.Header)
		}
	}
	would := metric(g.scrape(t), `mgw_filter_dryrun_would_reject_total{filter="ratelimit",route="dry.*"}`)
	if would < n-10-20 || would > n-10 {
		t.Errorf("dry run counted %v would-be refusals of %d requests, want about %d", would, n, n-10)
	}
}

func TestAccessLogLines(t *testing.T) {
	_, baddr := backend(t, "al")
	sf := filepath.Join(t.TempDir(), "filed.secret")
	os.WriteFile(sf, []byte(fileSecret), 0o600)
	// accesslog first, so its send phase (which runs last) sees auth's refusals too.
	g := serve(t, authConfig(baddr, sf, `
  - {api: "log.*", split: {pay: 100}, filters: [accesslog, auth]}
`)+`
  - {api: "quiet.*", split: {pay: 100}, filters: [accesslog], accesslog: {off: true}}
`, "WALLET_SECRET="+walletSecret)
	// The apps list allows wallet pay.* only; "filed" may call anything.
	const marker = "BODY-MARKER-4f2a"
	var signs []string
	r := g.sigConn(t, "mobile")
	for i := range 4 {
		var sign string
		s := signed{op: "log.demo.echo", app: "filed", dev: "dev-l", secret: fileSecret,
			body: fmt.Sprintf("%s-%d", marker, i), nonce: fmt.Sprintf("nonce-%d-%d", i, time.Now().UnixNano()), signedWith: &sign}
		if a := r.send(s.frame()); a.status != 200 {
			t.Fatalf("log request %d: %+v", i, a)
		}
		signs = append(signs, sign, s.nonce)
	}
	var sign string
	bad := signed{op: "log.demo.echo", app: "filed", dev: "dev-l", secret: "wrong", body: marker, signedWith: &sign}
	if a := r.send(bad.frame()); a.status != 401 {
		t.Fatalf("bad sign: %+v", a)
	}
	signs = append(signs, sign)
	if out, err := curl(t, "-d", marker, "http://"+g.addrs["web"]+"/api/log.demo.echo"); err != nil || out == "" {
		t.Fatalf("curl: %q %v", out, err)
	}
	r.send(func(id uint32) []byte {
		return mmtp.AppendRequest(nil, id, "quiet.demo.echo", nil, []byte(marker), false)
	})

	type line struct {
		Msg        string `json:"msg"`
		Listener   string `json:"listener"`
		API        string `json:"api"`
		Cluster    string `json:"cluster"`
		DecidedBy  string `json:"decided_by"`
		Status     int    `json:"status"`
		Error      string `json:"error"`
		RejectedBy string `json:"rejected_by"`
		UpstreamUS *int64 `json:"upstream_us"`
		TotalUS    *int64 `json:"total_us"`
		App        string `json:"app"`
		Device     string `json:"device"`
	}
	var lines []line
	var raw []string
	waitFor(t, 10*time.Second, func() bool {
		lines, raw = nil, nil
		sc := bufio.NewScanner(strings.NewReader(g.output()))
		for sc.Scan() {
			var l line
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "access" {
				lines = append(lines, l)
				raw = append(raw, sc.Text())
			}
		}
		return len(lines) >= 6
	})
	time.Sleep(100 * time.Millisecond) // a seventh line (the quiet route) would show by now
	if len(lines) != 6 {
		t.Fatalf("%d access lines, want 6 (4 ok, 1 refused, 1 HTTP; none for the quiet route):\n%s", len(lines), strings.Join(raw, "\n"))
	}
	for i, l := range lines {
		if l.API != "log.demo.echo" || l.UpstreamUS == nil || l.TotalUS == nil || *l.TotalUS <= 0 {
			t.Errorf("line %d lacks fields: %s", i, raw[i])
		}
		switch {
		case l.Status == 200:
			if l.Cluster != "pay" || l.DecidedBy == "" || *l.UpstreamUS <= 0 || l.App != "filed" || l.Device != "dev-l" {
				t.Errorf("line %d of a served request: %s", i, raw[i])
			}
		case l.Status == 401:
			if l.Error != codec.ErrUnauthorized || l.RejectedBy != "auth" || l.Cluster != "" {
				t.Errorf("line %d of a refused request: %s", i, raw[i])
			}
		default:
			t.Errorf("line %d: status %d: %s", i, l.Status, raw[i])
		}
		for _, s := range append(signs, marker, fileSecret, walletSecret) {
			if strings.Contains(raw[i], s) {
				t.Errorf("line %d contains %q: %s", i, s, raw[i])
			}
		}
	}
	web := 0
	for _, l := range lines {
		if l.Listener == "web" {
			web++
		}
	}
	if web != 1 {
		t.Errorf("no access line from the HTTP listener:\n%s", strings.Join(raw, "\n"))
	}
}

func TestCheckRejectsBadFilterConfig(t *testing.T) {
	base := `
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp%s}
clusters:
  - {name: pay, hosts: ["127.0.0.1:9"]}
routes:
  - {api: "ok.*", split: {pay: 100}}
  - {api: "pay.*", split: {pay: 100}%s}
`
	cases := []struct{ name, listener, route, want string }{
		{"unknown route filter", "", ", filters: [auth, ratelimt]", `routes[1].filters[1]: unknown filter "ratelimt"`},
		{"unknown listener filter", ", filters: [acesslog]", "", `listeners[0].filters[0]: unknown filter "acesslog"`},
		{"bad rate", "", ", filters: [ratelimit], ratelimit: {rate: fast}", `routes[1].ratelimit.rate: "fast"`},
		{"zero rate", "", ", filters: [ratelimit], ratelimit: {rate: 0/s}", `routes[1].ratelimit.rate`},
		{"ratelimit without rate", "", ", filters: [ratelimit]", `routes[1].filters[0].ratelimit.rate: missing`},
		{"bad key", "", ", filters: [ratelimit], ratelimit: {rate: 5/s, key: ip}", `routes[1].ratelimit.key: "ip"`},
		{"negative burst", "", ", filters: [ratelimit], ratelimit: {rate: 5/s, burst: -1}", `routes[1].ratelimit.burst`},
		{"bad skew", "", ", filters: [auth], auth: {skew: 1ms}", `routes[1].auth.skew`},
		{"bad sample", "", ", filters: [accesslog], accesslog: {sample: 2}", `routes[1].accesslog.sample`},
		{"filter twice", "", ", filters: [auth, auth]", `routes[1].filters[1]`},
		{"ratelimit on a listener without options", ", filters: [ratelimit]", "", `listeners[0].filters[0].ratelimit.rate: missing`},
		{"global limit without fleet.redis", "", ", filters: [{ratelimit: {rate: 5/s, scope: global}}]", `routes[1].filters[0].ratelimit.scope: global needs fleet.redis`},
		{"misspelt option in an entry", "", ", filters: [{ratelimit: {rate: 5/s, burts: 3}}]", `routes[1].filters[0].ratelimit.burts: unknown option "burts" (known: rate, burst, key, max_keys, fail_open, dry_run, scope)`},
		{"bad option on a listener", ", filters: [{auth: {skew: 1ms}}]", "", `listeners[0].filters[0].auth.skew: 1ms is not between 1s and 24h0m0s`},
		{"options given twice", "", ", filters: [{ratelimit: {rate: 5/s}}], ratelimit: {rate: 6/s}", `routes[1].ratelimit: ratelimit's options are also given in routes[1].filters[0]`},
		{"bad unused route-level options", "", ", filters: [auth], ratelimit: {rate: fast}", `routes[1].ratelimit.rate: "fast"`},
	}
	dir := t.TempDir()
	for i, c := range cases {
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", i))
		os.WriteFile(p, []byte(fmt.Sprintf(base, c.listener, c.route)), 0o600)
		cmd := exec.Command(mgwBin, "serve", "--check", "-c", p)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: --check accepted it: %s", c.name, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, out, c.want)
		}
	}
	// The same file with valid options passes.
	p := filepath.Join(dir, "good.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf(base, ", filters: [accesslog]",
		", filters: [auth, ratelimit], ratelimit: {rate: 50/s, burst: 10, key: device}")), 0o600)
	if out, err := exec.Command(mgwBin, "serve", "--check", "-c", p).CombinedOutput(); err != nil {
		t.Errorf("valid config refused: %v %s", err, out)
	}
	// And with the options in the entries, on the listener too.
	os.WriteFile(p, []byte(fmt.Sprintf(base, ", filters: [{auth: {replay: true}}, {ratelimit: {rate: 1000/s, key: device}}, accesslog]",
		", filters: [auth, {ratelimit: {rate: 50/s, burst: 10, key: device}}]")), 0o600)
	if out, err := exec.Command(mgwBin, "serve", "--check", "-c", p).CombinedOutput(); err != nil {
		t.Errorf("valid config with options in entries refused: %v %s", err, out)
	}
}

// A proxied path request carries no operation type and streams its body, so a signature
// cannot cover its method, path or body: one signature over nothing would admit any
// request. auth on a path route is therefore a config error, and a listener's auth
// refuses proxied requests instead of waving them through.
func TestAuthDoesNotWaveThroughProxiedRequests(t *testing.T) {
	dir := t.TempDir()
	sf := filepath.Join(dir, "filed.secret")
	os.WriteFile(sf, []byte(fileSecret), 0o600)
	p := filepath.Join(dir, "path-auth.yaml")
	os.WriteFile(p, []byte(strings.Replace(authConfig("127.0.0.1:9", sf, ""), "routes:\n",
		"routes:\n  - {path: /files, split: {pay: 100}, filters: [auth]}\n", 1)), 0o600)
	cmd := exec.Command(mgwBin, "serve", "--check", "-c", p)
	cmd.Env = append(os.Environ(), "WALLET_SECRET="+walletSecret)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `routes[0].filters[0]: "auth" cannot guard path route "/files"`) {
		t.Errorf("auth on a path route: --check says %v %s", err, out)
	}

	// auth on the HTTP listener: API requests are verified, proxied ones refused.
	_, baddr := backend(t, "pay")
	cfg := strings.Replace(authConfig(baddr, sf, "  - {path: /files, split: {pay: 100}}\n"),
		"{name: web, listen: 127.0.0.1:0, protocol: http1}", "{name: web, listen: 127.0.0.1:0, protocol: http1, filters: [auth]}", 1)
	g := serve(t, cfg, "WALLET_SECRET="+walletSecret)
	n0 := g.upstreamCalls(t)
	// What a client could sign for a proxied request: no operation, no body (app filed may
	// call anything).
	h, _ := (&signed{app: "filed", dev: "web-1", secret: fileSecret, emptyOp: true}).fields()
	try := func(extra ...string) (string, error) {
		args := append([]string{"-i"}, extra...)
		for _, f := range h {
			args = append(args, "-H", httpName(f.Key)+": "+f.Value)
		}
		return curl(t, args...)
	}
	out2, err := try("-X", "DELETE", "http://"+g.addrs["web"]+"/files/everything")
	if err != nil || !strings.HasPrefix(out2, "HTTP/1.1 401") || !strings.Contains(out2, "Error: "+codec.ErrUnauthorized) {
		t.Errorf("proxied request on a listener with auth: %q %v", out2, err)
	}
	// With a body streaming in, the 401 is written all the same, and the backend is not reached.
	out2, err = try("-X", "POST", "--data-binary", "any body", "http://"+g.addrs["web"]+"/files/everything")
	if err != nil || !strings.HasPrefix(out2, "HTTP/1.1 401") {
		t.Errorf("proxied request with a body on a listener with auth: %q", out2)
	}
	// A signed API request on the same listener passes (the listener's auth, then the route's).
	h, body := (&signed{op: "pay.demo.echo", app: "wallet", dev: "web-1", secret: walletSecret, body: "ok"}).fields()
	args := []string{"-i", "--data-binary", string(body), "http://" + g.addrs["web"] + "/api/pay.demo.echo"}
	for _, f := range h {
		args = append(args, "-H", httpName(f.Key)+": "+f.Value)
	}
	out2, err = curl(t, args...)
	if err != nil || !strings.HasPrefix(out2, "HTTP/1.1 200") {
		t.Errorf("signed API request on a listener with auth: %q %v", out2, err)
	}
	if n := g.upstreamCalls(t); n != n0+1 {
		t.Errorf("backend saw %v calls, want 1 (the API request only)", n-n0)
	}
}

// A filter that answers a proxied request early, while its body is still streaming in,
// must still write its answer.
func TestEarlyAnswerToProxiedRequestWithBody(t *testing.T) {
	_, baddr := backend(t, "pay")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {path: /files, split: {pay: 100}, filters: [ratelimit], ratelimit: {rate: 1/m, burst: 1, key: client}}
`, baddr))
	url := "http://" + g.addrs["web"] + "/files/x"
	if out, err := curl(t, "-i", "--data-binary", "first", url); err != nil || !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("first: %q %v", out, err)
	}
	for i := range 10 {
		out, err := curl(t, "-i", "--data-binary", "again", url)
		if err != nil || !strings.HasPrefix(out, "HTTP/1.1 429") {
			t.Fatalf("refusal %d: %q %v", i, out, err)
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, make([]byte, 1<<20), 0o600)
	for i := range 5 {
		out, err := curl(t, "-i", "--data-binary", "@"+big, url)
		if err != nil || !strings.HasPrefix(out, "HTTP/1.1 429") {
			t.Fatalf("refusal of 1 MiB %d: %.200q %v", i, out, err)
		}
	}
}

// A reload keeps the route's replay store: a request captured before SIGHUP is still a
// replay after it. Dry-run auth lets an unsigned request through and counts it.
func TestAuthReplayStoreSurvivesReloadAndDryRun(t *testing.T) {
	g := startAuthGateway(t, "")
	r := g.sigConn(t, "mobile")
	frame := signed{op: "pay.demo.echo", app: "wallet", dev: "dev-r", secret: walletSecret, body: "once"}.frame()
	if a := r.send(frame); a.status != 200 {
		t.Fatalf("first use: %+v", a)
	}
	// Reload with a changed cluster timeout: the pay.* route itself is unchanged.
	path := filepath.Join(g.dir, "mgw.yaml")
	cfg, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(cfg), "timeout: 5s", "timeout: 4s", 1)), 0o600)
	g.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(g.output(), "configuration reloaded") })
	expectRefused(t, g, g.sigConn(t, "mobile"), "replay after reload", frame, 401, codec.ErrUnauthorized, "replayed_nonce")

	before := metric(g.scrape(t), `mgw_filter_dryrun_would_reject_total{filter="auth",route="try.*"}`)
	n0 := g.upstreamCalls(t)
	a := r.send(func(id uint32) []byte { return mmtp.AppendRequest(nil, id, "try.demo.echo", nil, []byte("x"), false) })
	if a.status != 200 {
		t.Fatalf("unsigned request on a dry-run auth route: %+v", a)
	}
	if n := g.upstreamCalls(t); n != n0+1 {
		t.Errorf("dry-run request did not reach the backend")
	}
	if d := metric(g.scrape(t), `mgw_filter_dryrun_would_reject_total{filter="auth",route="try.*"}`) - before; d != 1 {
		t.Errorf("dry-run auth counted %v would-be refusals, want 1", d)
	}
}

// A cluster's max_in_flight answers the excess 503 unavailable without calling it.
func TestClusterConcurrencyLimit(t *testing.T) {
	_, baddr := backend(t, "pay")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s, max_in_flight: 2}
routes:
  - {api: "demo.*", split: {pay: 100}}
`, baddr))
	c := g.mmtpClient(t, "mobile", client.Options{})
	var wg sync.WaitGroup
	statuses := make(chan string, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := c.Call(ctx, "demo.sleep", nil, []byte("1000"))
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- fmt.Sprintf("%d %s", resp.Status, resp.Header.Value("error"))
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[string]int{}
	for s := range statuses {
		count[s]++
	}
	if count["200 "] != 2 || count["503 "+codec.ErrUnavailable] != 4 {
		t.Errorf("6 concurrent 1 s requests with max_in_flight 2: %v, want 2 served and 4 refused 503", count)
	}
	if n := g.upstreamCalls(t); n != 2 {
		t.Errorf("the backend saw %v requests, want 2", n)
	}
}

// A listener's filters see every request on it, also those no route matches: an
// unrouted API call and an unrouted proxied path each get an access line.
func TestListenerFiltersSeeUnroutedRequests(t *testing.T) {
	_, baddr := backend(t, "pay")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1, filters: [accesslog]}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {api: "demo.*", split: {pay: 100}}
  - {path: /files, split: {pay: 100}}
`, baddr))
	web := "http://" + g.addrs["web"]
	for _, u := range []string{"/api/demo.echo", "/files/a", "/api/nothing.here", "/nowhere"} {
		if _, err := curl(t, "-d", "x", web+u); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`"status":200`, `"status":200`, `"status":404`, `"status":404`}
	var got []string
	waitFor(t, 5*time.Second, func() bool {
		got = nil
		for _, l := range strings.Split(g.output(), "\n") {
			if strings.Contains(l, `"msg":"access"`) {
				got = append(got, l)
			}
		}
		return len(got) >= len(want)
	})
	time.Sleep(100 * time.Millisecond)
	got = nil
	for _, l := range strings.Split(g.output(), "\n") {
		if strings.Contains(l, `"msg":"access"`) {
			got = append(got, l)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d access lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			t.Errorf("line %d: %s, want %s", i, got[i], w)
		}
	}
}

// TestListenerAuthOptions: a listener's filters entry carries options, here auth with
// replay protection and a 10s window. They apply to every request on that listener,
// whatever its route, and to its HELLOs; a listener without auth stays a trusted one.
func TestListenerAuthOptions(t *testing.T) {
	_, baddr := backend(t, "pay")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - name: guarded
    listen: 127.0.0.1:0
    protocol: mmtp
    filters: [{auth: {replay: true, skew: 10s}}, accesslog]
  - {name: trusted, listen: 127.0.0.1:0, protocol: mmtp}
apps:
  - {id: wallet, secret_env: WALLET_SECRET}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {api: "pay.*", split: {pay: 100}}
`, baddr), "WALLET_SECRET="+walletSecret)
	r := g.sigConn(t, "guarded")
	req := func(s signed) signed {
		s.op, s.app, s.dev, s.secret, s.body = "pay.demo.echo", "wallet", "dev-1", walletSecret, "hi"
		return s
	}
	if a := r.send(req(signed{}).frame()); a.status != 200 || !reached(a.body, "pay.demo.echo", "hi") {
		t.Fatalf("signed request with a nonce: %+v", a)
	}
	expectRefused(t, g, r, "no nonce (replay: true)", req(signed{noNonce: true}).frame(), 401, "unauthorized", "missing_nonce")
	expectRefused(t, g, r, "20s old (skew: 10s)", req(signed{skew: -20 * time.Second}).frame(), 401, "unauthorized", "stale_timestamp")
	replay := req(signed{nonce: "once"})
	if a := r.send(replay.frame()); a.status != 200 {
		t.Fatalf("first use of a nonce: %+v", a)
	}
	expectRefused(t, g, r, "replayed", replay.frame(), 401, "unauthorized", "replayed_nonce")
	// HELLO on that listener is checked with its options too.
	h := g.sigConn(t, "guarded")
	expectRefused(t, g, h, "HELLO without a nonce", signed{app: "wallet", dev: "dev-2", secret: walletSecret, noNonce: true}.frame(), 401, "unauthorized", "missing_nonce")
	if a := h.send(signed{app: "wallet", dev: "dev-2", secret: walletSecret}.frame()); a.status != 200 {
		t.Fatalf("HELLO with a nonce: %+v", a)
	}
	// The other listener has no auth: unsigned requests pass.
	u := g.sigConn(t, "trusted")
	if a := u.send(func(id uint32) []byte {
		return mmtp.AppendRequest(nil, id, "pay.demo.echo", nil, []byte("open"), false)
	}); a.status != 200 {
		t.Fatalf("unsigned request on the trusted listener: %+v", a)
	}
}

// accesslog sample: 0.3 logs about 30% of requests; off logs none.
func TestAccessLogSampling(t *testing.T) {
	_, baddr := backend(t, "pay")
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
clusters:
  - {name: pay, hosts: [%q], timeout: 5s}
routes:
  - {api: "some.*", split: {pay: 100}, filters: [accesslog], accesslog: {sample: 0.3}}
  - {api: "none.*", split: {pay: 100}, filters: [accesslog], accesslog: {off: true}}
`, baddr))
	c := g.mmtpClient(t, "mobile", client.Options{})
	for range 200 {
		call(t, c, "some.demo.echo", nil)
		call(t, c, "none.demo.echo", nil)
	}
	time.Sleep(200 * time.Millisecond) // the writer drains every 10 ms
	some, none := 0, 0
	for _, l := range strings.Split(g.output(), "\n") {
		switch {
		case strings.Contains(l, `"msg":"access"`) && strings.Contains(l, `"api":"some.demo.echo"`):
			some++
		case strings.Contains(l, `"msg":"access"`):
			none++
		}
	}
	// 200 draws at 0.3: mean 60, standard deviation 6.5; 30..90 is over 4.5 of them.
	if some < 30 || some > 90 || none != 0 {
		t.Errorf("sample 0.3 logged %d of 200, off logged %d", some, none)
	}
}
