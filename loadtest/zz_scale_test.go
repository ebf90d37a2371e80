package loadtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

func TestZZScale(t *testing.T) {
	if os.Getenv("ZZSCALE") == "" {
		t.Skip()
	}
	srv, _ := testserver.NewMMTP(nil)
	defer srv.Close()
	stats, _ := fakeStats(t, srv)
	res, err := Run(context.Background(), Options{Target: srv.Addr(), Conns: 15000, Ramp: 5000, Rate: 1000,
		Duration: 5 * time.Second, Stats: stats, Launcher: testLauncher(), Progress: os.Stderr, Scenarios: []string{"steady", "reconnect"}})
	if err != nil {
		t.Fatal(err)
	}
	res.WriteTable(os.Stderr, true)
}
