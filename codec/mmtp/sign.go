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
	n := len(f.Operation) + len(f.AppID) + len(f.DeviceID) + len(f.Timestamp) + len(f.Nonce) + 5 + 64
	return f.AppendCanonical(make([]byte, 0, n))
}

// AppendCanonical appends the canonical string to dst, so a verifier on the hot path can
// build it in a reused buffer.
func (f *SignFields) AppendCanonical(dst []byte) []byte {
	sum := sha256.Sum256(f.Body)
	dst = append(dst, f.Operation...)
	dst = append(dst, '\n')
	dst = append(dst, f.AppID...)
	dst = append(dst, '\n')
	dst = append(dst, f.DeviceID...)
	dst = append(dst, '\n')
	dst = append(dst, f.Timestamp...)
	dst = append(dst, '\n')
	dst = append(dst, f.Nonce...)
	dst = append(dst, '\n')
	return hex.AppendEncode(dst, sum[:])
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
