package mmtp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
)

// HelloOperation stands in for the operation type when a HELLO is signed.
const HelloOperation = "mmtp.hello"

// SignFields are the inputs of the signature (mmtp.md, "Signature").
type SignFields struct {
	Operation string // operation-type, or HelloOperation for a HELLO
	AppID     string
	DeviceID  string
	Timestamp string // Unix milliseconds, decimal, as sent
	Nonce     string // "" when absent
	Body      []byte // the body as on the wire (compressed when GZIP is set)
}

// Canonical returns the string that is signed: the six fields joined by '\n', the last
// being the lowercase hex SHA-256 of the body.
func (f *SignFields) Canonical() []byte {
	sum := sha256.Sum256(f.Body)
	n := len(f.Operation) + len(f.AppID) + len(f.DeviceID) + len(f.Timestamp) + len(f.Nonce) + 5 + 64
	b := make([]byte, 0, n)
	b = append(b, f.Operation...)
	b = append(b, '\n')
	b = append(b, f.AppID...)
	b = append(b, '\n')
	b = append(b, f.DeviceID...)
	b = append(b, '\n')
	b = append(b, f.Timestamp...)
	b = append(b, '\n')
	b = append(b, f.Nonce...)
	b = append(b, '\n')
	b = hex.AppendEncode(b, sum[:])
	return b
}

// Sign returns the `sign` value: lowercase hex of HMAC-SHA256(secret, canonical).
func Sign(secret []byte, f *SignFields) string {
	m := hmac.New(sha256.New, secret)
	m.Write(f.Canonical())
	return hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sign is the signature of f under secret, in constant time.
func Verify(secret []byte, f *SignFields, sign string) bool {
	want := Sign(secret, f)
	return subtle.ConstantTimeCompare([]byte(want), []byte(sign)) == 1
}
