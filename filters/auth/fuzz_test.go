package auth

import (
	"context"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// FuzzReceive feeds arbitrary auth headers and bodies to the filter: it must never panic,
// must answer only 401, 403 or 503, and must let a request through only when its sign is
// the reference signature of its fields under the named app's key, at an acceptable time.
func FuzzReceive(f *testing.F) {
	fx := newFixture(f, &Options{Replay: true})
	now := fx.clk.Millis()
	good := mmtp.Sign([]byte(walletSecret), &mmtp.SignFields{Operation: "demo.echo", AppID: "wallet", DeviceID: "d", Timestamp: now, Nonce: "n", Body: []byte("b")})
	f.Add("demo.echo", "wallet", "d", now, "n", good, []byte("b"), "", "")
	f.Add("demo.echo", "wallet", "d", now, "n", good, []byte("b"), "wallet", "d")
	f.Add("demo.echo", "", "", now, "n", good, []byte("b"), "wallet", "d")
	f.Add("pay", "shop", "d", "0", "", "zz", []byte(nil), "", "")
	f.Add("", "keyless", "\x00", "99999999999999999", "n", "", []byte("x"), "other", "")
	f.Fuzz(func(t *testing.T, op, app, dev, ts, nonce, sign string, body []byte, connApp, connDev string) {
		req := &codec.Request{Protocol: codec.MMTP, Operation: op, Body: body, Conn: codec.ConnInfo{AppID: connApp, DeviceID: connDev}}
		for _, kv := range [][2]string{{"app-id", app}, {"device-id", dev}, {"timestamp", ts}, {"nonce", nonce}, {"sign", sign}} {
			if kv[1] != "" {
				req.Header = append(req.Header, codec.Field{Key: kv[0], Value: kv[1]})
			}
		}
		resp := fx.a.Receive(context.Background(), req, nil)
		if resp != nil {
			switch resp.Status {
			case 401, 403, 503:
			default:
				t.Fatalf("status %d", resp.Status)
			}
			return
		}
		key := map[string]string{"wallet": walletSecret, "shop": shopSecret}[req.App()]
		want := mmtp.Sign([]byte(key), &mmtp.SignFields{Operation: op, AppID: req.App(), DeviceID: req.Device(), Timestamp: ts, Nonce: nonce, Body: body})
		if key == "" || sign != want || nonce == "" {
			t.Fatalf("accepted app %q sign %q", req.App(), sign)
		}
	})
}
