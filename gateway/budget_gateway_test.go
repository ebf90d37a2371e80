package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/netpoll"
)

// TestQueuedBudgetGateway: runtime.queued_budget reaches the engine. Clients that ask for
// a large answer and never read are closed for the budget, counted under reason
// queued_budget, until the queued sum is back under; the budget is exported as a gauge.
func TestQueuedBudgetGateway(t *testing.T) {
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			const budget = 2 << 20
			be := timeoutsBackend(t, 16<<20)
			g := runGateway(t, fmt.Sprintf(`
engine: %s
runtime: {queued_budget: 2MiB, pending_budget: "off"}
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1, write_stall_timeout: 1h}
clusters:
  - {name: be, hosts: [%q], timeout: 20s}
routes:
  - {path: /, split: {be: 100}}
`, engine, be.Listener.Addr().String()), Options{})

			var conns []net.Conn
			for range 20 {
				c := dialSmallRcvBuf(t, g.Addr("web").String())
				conns = append(conns, c)
				if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			closed := g.listeners[0].m.closed[netpoll.ReasonQueuedBudget]
			deadline := time.Now().Add(15 * time.Second)
			for closed.Get() == 0 || g.engine.Stats().QueuedBytes > budget {
				if time.Now().After(deadline) {
					t.Fatalf("queued %d bytes, %d closed for the budget: not back under %d",
						g.engine.Stats().QueuedBytes, closed.Get(), budget)
				}
				time.Sleep(50 * time.Millisecond)
			}
			var out bytes.Buffer
			g.set.WritePrometheus(&out)
			for _, want := range []string{"mgw_engine_queued_budget_bytes 2097152\n",
				"mgw_engine_pending_budget_bytes -1\n",
				`mgw_engine_closed_total{reason="queued_budget"} `} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("metrics lack %q", want)
				}
			}
		})
	}
}
