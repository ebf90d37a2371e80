package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// interimLog records what a forward's caller hears, in order.
type interimLog struct {
	mu     sync.Mutex
	events []string
}

func (l *interimLog) add(s string) {
	l.mu.Lock()
	l.events = append(l.events, s)
	l.mu.Unlock()
}

func (l *interimLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.events, " | ")
}

// forwardWays runs the request through Forward (the streamed path) and ForwardAsync (the
// reactor's), logging the final answer's status as it is delivered.
var forwardWays = []struct {
	name string
	run  func(t *testing.T, addr string, r *ProxyRequest, log *interimLog) (*ProxyResponse, error)
}{
	{"Forward", func(t *testing.T, addr string, r *ProxyRequest, log *interimLog) (*ProxyResponse, error) {
		c := newCluster(t, config.Cluster{Timeout: dur(5 * time.Second)}, nil, addr)
		resp, err := c.Forward(context.Background(), r)
		log.add(fmt.Sprintf("final %v", err == nil))
		return resp, err
	}},
	{"ForwardAsync", func(t *testing.T, addr string, r *ProxyRequest, log *interimLog) (*ProxyResponse, error) {
		c := asyncCluster(t, config.Cluster{Timeout: dur(5 * time.Second)}, Options{}, addr)
		return awaitOnce(t, func(done func(*ProxyResponse, error)) {
			c.ForwardAsync(r, []byte("hi"), func(resp *ProxyResponse, err error) {
				log.add(fmt.Sprintf("final %v", err == nil))
				done(resp, err)
			})
		})
	}},
}

// Each interim answer reaches ProxyRequest.Interim, in order and before the final one,
// with the fields the final answer's filtering keeps (not Connection nor what it names),
// also when the interims are split across reads.
func TestForwardInterimPassedOn(t *testing.T) {
	parts := []string{
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\nConnection: x-h\r\nX-H: 1\r\nLink: </b>\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </c>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	for _, way := range forwardWays {
		t.Run(way.name, func(t *testing.T) {
			addr, _ := rawServer(t, func(_ int, r *http.Request, conn net.Conn) bool {
				io.Copy(io.Discard, r.Body)
				io.WriteString(conn, parts[0])
				time.Sleep(20 * time.Millisecond) // two reads on the gateway's side
				io.WriteString(conn, parts[1])
				return false
			})
			log := &interimLog{}
			r := &ProxyRequest{Method: "POST", Target: "/", Body: strings.NewReader("hi"), ContentLength: 2,
				Interim: InterimFunc(func(status int, header codec.Header) { log.add(fmt.Sprintf("%d %v", status, header)) })}
			resp, err := way.run(t, addr, r, log)
			if err != nil {
				t.Fatalf("forward: %v", err)
			}
			body, err := readAnswer(resp)
			if err != nil || string(body) != "ok" || resp.Status != 200 {
				t.Fatalf("final %d %q %v, want 200 ok", resp.Status, body, err)
			}
			want := "100 [] | 103 [{link </a>} {link </b>}] | 103 [{link </c>}] | final true"
			if got := log.String(); got != want {
				t.Errorf("heard %q\nwant  %q", got, want)
			}
		})
	}
}

// A 101 is an error with Interim set as without it, and is not passed on.
func TestForwardInterim101Refused(t *testing.T) {
	for _, way := range forwardWays {
		t.Run(way.name, func(t *testing.T) {
			addr, _ := rawServer(t, func(_ int, r *http.Request, conn net.Conn) bool {
				io.Copy(io.Discard, r.Body)
				io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
				return true
			})
			log := &interimLog{}
			r := &ProxyRequest{Method: "POST", Target: "/", Body: strings.NewReader("hi"), ContentLength: 2,
				Interim: InterimFunc(func(status int, header codec.Header) { log.add(fmt.Sprint(status)) })}
			_, err := way.run(t, addr, r, log)
			if e := mustUpstreamError(t, err); e.Kind != Failed || !strings.Contains(err.Error(), "101") {
				t.Fatalf("error %v (kind %v), want a Failed naming the 101", err, e.Kind)
			}
			if got := log.String(); got != "final false" {
				t.Errorf("heard %q, want the failure alone", got)
			}
		})
	}
}
