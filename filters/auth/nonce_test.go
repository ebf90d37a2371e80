package auth

import (
	"strconv"
	"testing"
)

func BenchmarkNonceRemember(b *testing.B) {
	st := newNonceStore(DefaultMaxNonces)
	nonces := make([]string, 1<<16)
	for i := range nonces {
		nonces[i] = "nonce-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Moving time so entries expire and the store cycles, as in steady state.
		now := int64(i)
		st.remember("wallet", nonces[i&(len(nonces)-1)], now+1000, now)
		i++
	}
}
