package observe

import "testing"

// FuzzProcParsers: /proc text from another kernel version (or a container's fake) must
// never panic the harness.
func FuzzProcParsers(f *testing.F) {
	f.Add([]byte("TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 3\n"))
	f.Add([]byte("Max open files            20000                20000                files\n"))
	f.Add([]byte("TCP 100 120 2432 13 8 : tunables 0 0 0\n"))
	f.Add([]byte("Max open files unlimited unlimited files\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSockstat(b)
		ParseLimitsNofile(b)
		ParseStatCPU(b)
		for _, v := range ParseSlabinfo(b, SocketSlabs) {
			_ = v
		}
	})
}
