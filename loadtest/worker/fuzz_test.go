package worker

import "testing"

// FuzzParseSourceAddrs: a range either fails or yields 1..MaxSourceAddrs addresses.
func FuzzParseSourceAddrs(f *testing.F) {
	for _, s := range []string{"127.0.0.2-127.0.0.50", "127.0.0.2,127.0.0.3", "::1-::5", "10.0.0.0-10.1.0.0", "-", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseSourceAddrs(s)
		if err == nil && (len(a) == 0 || len(a) > MaxSourceAddrs) {
			t.Fatalf("%q gave %d addresses", s, len(a))
		}
	})
}
