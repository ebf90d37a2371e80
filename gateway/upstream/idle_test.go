package upstream

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
)

// idleCloser is a backend that answers one request per connection with keep-alive
// promised, then, after a short random pause, closes the connection without reading
// anything more: a backend whose keep-alive timeout is far below the gateway's.
func idleCloser(t *testing.T) string {
	addr, _ := rawServer(t, func(_ int, req *http.Request, conn net.Conn) bool {
		io.Copy(io.Discard, req.Body)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		conn.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, conn) // a request landing now is never read
		return true
	})
	return addr
}

// TestStaleKeepAliveIsNotResent pins down the conservative choice: a POST that meets a
// kept-alive connection the backend is closing fails as Sent (it cannot be proven unread;
// only net/http's errServerClosedIdle can, and roundTrip resends that case). The router
// must not resend these, so they must not claim to be retriable.
func TestStaleKeepAliveIsNotResent(t *testing.T) {
	c := newCluster(t, config.Cluster{}, nil, idleCloser(t))
	failed := 0
	for range 300 {
		_, err := c.Call(context.Background(), apiReq("a.b"), 0)
		if err == nil {
			continue
		}
		failed++
		if e := mustUpstreamError(t, err); e.Kind != Failed || !e.Sent || e.Retriable() {
			t.Fatalf("stale connection: kind %v sent %v retriable %v: %v", e.Kind, e.Sent, e.Retriable(), e)
		}
	}
	t.Logf("%d of 300 calls met a closing connection", failed)
}
