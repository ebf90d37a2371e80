package auth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// TestSecretsNeverLeak drives every path that logs, counts or reports (valid requests,
// each failure, dry run, HELLO, a degraded store, load errors) and then looks for the
// secrets, and for any sign value, in the logs, the metrics, the admin config JSON, the
// responses and printed filter state.
func TestSecretsNeverLeak(t *testing.T) {
	f := newFixture(t, &Options{Replay: true})
	var out bytes.Buffer
	var signs []string
	record := func(req *codec.Request, resp *codec.Response) {
		signs = append(signs, req.Header.Value("sign"))
		if resp != nil {
			fmt.Fprintf(&out, "%d %v %s\n", resp.Status, resp.Header, resp.Body)
		}
	}
	specs := []func(s *reqSpec){
		func(s *reqSpec) {},
		func(s *reqSpec) { s.secret = shopSecret },
		func(s *reqSpec) { s.app, s.secret = "shop", walletSecret },
		func(s *reqSpec) { s.ts = f.clk.MillisAt(time.Hour) },
		func(s *reqSpec) { s.app, s.secret, s.op = "shop", shopSecret, "pay.x" },
		func(s *reqSpec) { s.nonce = "" },
	}
	for _, proto := range []codec.Protocol{codec.MMTP, codec.HTTP1} {
		for i, m := range specs {
			s := f.good(proto)
			s.nonce = fmt.Sprintf("n-%d-%d", proto, i)
			m(&s)
			req := build(s)
			record(req, f.do(req))
			req = build(s) // a replay
			record(req, f.do(req))
		}
	}
	hello := f.good(codec.MMTP)
	hello.op, hello.signOp = "", "mmtp.hello"
	req := build(hello)
	record(req, f.a.Hello(t.Context(), req))
	f.a.nonces = newNonceStore(1)
	for i := 0; i < 3; i++ {
		s := f.good(codec.MMTP)
		s.nonce = fmt.Sprint("full-", i)
		req := build(s)
		record(req, f.do(req))
	}

	// Printing the filter, as a careless debug line might.
	fmt.Fprintf(&out, "%v %+v %#v\n", f.a, f.a, f.a.apps["wallet"])
	k := f.a.apps["wallet"].key
	fmt.Fprintf(&out, "%v %s %q %x %#v %d\n", k, k, k, k, k, k)
	fmt.Fprintln(&out, k.String(), k.GoString())
	slog.New(slog.NewJSONHandler(&out, nil)).Info("dump", "app", f.a.apps["wallet"], "key", f.a.apps["shop"].key)
	if b, err := json.Marshal(f.a.apps["wallet"].key); err == nil {
		out.Write(b)
	}

	// Load errors.
	for _, apps := range [][]config.App{
		{{ID: "x", Secret: walletSecret}, {ID: "x", SecretEnv: "WALLET_SECRET"}},
		{{ID: "x", SecretEnv: "NOPE"}},
		{{ID: "x", SecretFile: "/nonexistent/" + "k"}},
	} {
		env := f.env
		env.Apps = apps
		if _, err := New(&env); err == nil {
			t.Fatalf("apps %v accepted", apps[0].ID)
		} else {
			fmt.Fprintln(&out, err)
		}
	}

	// What /v1/config shows: the config as JSON, with one app's secret inline.
	cfg := config.Config{Apps: append([]config.App{{ID: "inline", Secret: walletSecret}}, f.env.Apps...)}
	admin, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}

	var metricsText bytes.Buffer
	f.set.WritePrometheus(&metricsText)
	if !strings.Contains(metricsText.String(), `mgw_auth_failures_total{route="demo.*",reason="bad_sign"}`) {
		t.Fatalf("metrics lack the failures series:\n%s", metricsText.String())
	}
	if !strings.Contains(f.logs.String(), "reason=bad_sign") {
		t.Fatalf("debug log lacks refusals:\n%s", f.logs.String())
	}

	for where, text := range map[string]string{
		"logs":      f.logs.String(),
		"metrics":   metricsText.String(),
		"admin":     string(admin),
		"responses": out.String(),
	} {
		for _, secret := range []string{walletSecret, shopSecret, hex.EncodeToString([]byte(walletSecret))} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret appears in %s", where)
			}
		}
		for _, sg := range signs {
			if sg != "" && strings.Contains(text, sg) {
				t.Errorf("a sign value appears in %s", where)
			}
		}
	}
	if !strings.Contains(out.String(), redacted) {
		t.Error("printed key was not redacted")
	}
}
