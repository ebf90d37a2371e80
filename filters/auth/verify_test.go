package auth

import (
	"testing"

	"github.com/mgw-project/mgw/codec/mmtp"
)

// FuzzVerifyMatchesMmtp holds the pooled verifier equal to mmtp.Sign/Verify, the
// reference, for any fields, key and offered signature.
func FuzzVerifyMatchesMmtp(f *testing.F) {
	f.Add("k", "demo.echo", "wallet", "dev-1", "1764219600000", "n1", []byte("hi"), "")
	f.Add("", "", "", "", "", "", []byte(nil), "00")
	f.Add("key\n", "a\nb", "x", "y", "1", "", []byte{0, 1, 2}, "ZZ")
	f.Fuzz(func(t *testing.T, key, op, app, dev, ts, nonce string, body []byte, offered string) {
		if key == "" {
			key = "k"
		}
		fields := &mmtp.SignFields{Operation: op, AppID: app, DeviceID: dev, Timestamp: ts, Nonce: nonce, Body: body}
		v := newVerifier(secret(key))
		good := mmtp.Sign([]byte(key), fields)
		if !v.verify(fields, good) {
			t.Fatal("the reference signature was refused")
		}
		if got, want := v.verify(fields, offered), mmtp.Verify([]byte(key), fields, offered); got != want {
			t.Fatalf("verify(%q) = %v, mmtp.Verify = %v", offered, got, want)
		}
		// Reuse from the pool must not carry state over.
		if !v.verify(fields, good) {
			t.Fatal("refused on reuse")
		}
	})
}

func TestVerifyNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	fields := &mmtp.SignFields{Operation: "demo.echo", AppID: "wallet", DeviceID: "dev-1", Timestamp: "1764219600000", Nonce: "n", Body: make([]byte, 512)}
	v := newVerifier(secret("k"))
	good := mmtp.Sign([]byte("k"), fields)
	v.verify(fields, good)
	if n := testing.AllocsPerRun(200, func() {
		if !v.verify(fields, good) {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per verify", n)
	}
}
