package mmtp

import "testing"

// Expected values computed independently (Python hmac/hashlib) from mmtp.md's definition.
func TestSignKnownVectors(t *testing.T) {
	req := SignFields{Operation: "demo.echo", AppID: "wallet", DeviceID: "dev-1",
		Timestamp: "1700000000000", Nonce: "n-1", Body: []byte("hi")}
	wantCanon := "demo.echo\nwallet\ndev-1\n1700000000000\nn-1\n" +
		"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
	if got := string(req.Canonical()); got != wantCanon {
		t.Fatalf("canonical %q", got)
	}
	secret := []byte("s3cret")
	const want = "667647510d37410d1e5b235a5ea63c53267f8502ec390d8541e44020e45c042e"
	if got := Sign(secret, &req); got != want {
		t.Fatalf("sign %s", got)
	}
	hello := SignFields{Operation: HelloOperation, AppID: "wallet", DeviceID: "dev-1", Timestamp: "1700000000000"}
	if got := Sign(secret, &hello); got != "b724595d5e25bae5616110d72247e3e1ea8ff1db6219f064003594410d9b2e2e" {
		t.Fatalf("hello sign %s", got)
	}
	if !Verify(secret, &req, want) {
		t.Fatal("Verify rejected the right signature")
	}
	for name, mutate := range map[string]func(f *SignFields){
		"body":   func(f *SignFields) { f.Body = []byte("hj") },
		"nonce":  func(f *SignFields) { f.Nonce = "" },
		"device": func(f *SignFields) { f.DeviceID = "dev-2" },
	} {
		f := req
		mutate(&f)
		if Verify(secret, &f, want) {
			t.Errorf("%s changed but the signature still verifies", name)
		}
	}
	if Verify([]byte("other"), &req, want) || Verify(secret, &req, "667647") {
		t.Fatal("wrong secret or truncated signature verified")
	}
}
