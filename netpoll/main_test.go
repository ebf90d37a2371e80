package netpoll

import (
	"os"
	"testing"
)

// TestMain lets the test binary double as the idle-connection client of BenchmarkIdleCost
// (MGW_IDLE_CLIENT=addr,N), so the client's sockets and memory are not the server's.
func TestMain(m *testing.M) {
	if spec := os.Getenv(idleClientEnv); spec != "" {
		os.Exit(runIdleClient(spec))
	}
	os.Exit(m.Run())
}
