package gateway

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/testnet"
)

// A proxied response reaches the client with the backend's end-to-end fields in the order
// the backend sent them, repeated fields kept as separate lines, and the hop-by-hop ones
// (and those Connection names) removed. The gateway converts the fields once, from the
// backend's wire to the client's; before, they went through a map and came out in random
// order.
func TestProxiedResponseKeepsFieldOrder(t *testing.T) {
	addr := testnet.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nX-Zeta: 1\r\nSet-Cookie: a=1\r\nConnection: X-Hop\r\nX-Alpha: 2\r\n"+
				"X-Hop: drop\r\nKeep-Alive: timeout=5\r\nSet-Cookie: b=2\r\nX-Mid: 3\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	g := runGateway(t, fmt.Sprintf(`
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: be, hosts: [%q]}
routes:
  - {path: /, split: {be: 100}}
`, addr), Options{})
	c, err := net.Dial("tcp", g.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for range 3 { // on a kept-alive backend connection as on a fresh one
		fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		tp := bufio.NewReader(c)
		var fields []string
		for {
			line, err := tp.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			if k, _, ok := strings.Cut(line, ":"); ok && (strings.HasPrefix(k, "X-") || k == "Set-Cookie" || k == "Keep-Alive") {
				fields = append(fields, line)
			}
		}
		body := make([]byte, 2)
		if _, err := tp.Read(body); err != nil || string(body) != "ok" {
			t.Fatalf("body %q %v", body, err)
		}
		want := []string{"X-Zeta: 1", "Set-Cookie: a=1", "X-Alpha: 2", "Set-Cookie: b=2", "X-Mid: 3"}
		if strings.Join(fields, "|") != strings.Join(want, "|") {
			t.Fatalf("fields %q, want %q", fields, want)
		}
	}
}
