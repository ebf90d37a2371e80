package auth

import "github.com/mgw-project/mgw/codec/mmtp"

// verify reports whether sign is f's signature under key, in constant time.
func verify(key secret, f *mmtp.SignFields, sign string) bool {
	return mmtp.Verify(key, f, sign)
}
