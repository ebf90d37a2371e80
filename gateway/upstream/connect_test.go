package upstream

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// backlogServer is a backend whose accept queue holds only backlog connections and whose
// accept loop is slow, so under load the kernel drops SYNs and the client's connect waits
// for a SYN retransmit. Every answer closes its connection: each request connects anew.
func backlogServer(t *testing.T, backlog int, acceptEvery time.Duration) string {
	t.Helper()
	fd := listenFD(t, backlog)
	f := os.NewFile(uintptr(fd), "backlog-listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				req.Body.Close()
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
			}()
			time.Sleep(acceptEvery)
		}
	}()
	return ln.Addr().String()
}

// TestConnectSurvivesFullAcceptQueue: a backend with a full accept queue drops SYNs, and
// the client's kernel sends the SYN again after a second. With the defaults every call
// still gets its 200: the connect timeout outlasts that retransmit, and a connect that
// fails anyway (nothing sent) is tried again.
func TestConnectSurvivesFullAcceptQueue(t *testing.T) {
	addr := backlogServer(t, 5, time.Millisecond)
	c := newCluster(t, config.Cluster{Timeout: dur(20 * time.Second)}, nil, addr)
	everyCallAnswered(t, func(req *codec.Request) (*codec.Response, error) { return c.Call(context.Background(), req, 0) })
}

// listenFD is a TCP socket listening on 127.0.0.1 (a free port) with the given accept
// queue: the caller owns it.
func listenFD(t testing.TB, backlog int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd
}

// everyCallAnswered makes 1,000 calls, 32 at a time, and fails unless each is a 200.
func everyCallAnswered(t *testing.T, call func(*codec.Request) (*codec.Response, error)) {
	t.Helper()
	// 1000 calls: under the race detector with other packages running, the backend's slow
	// accept loop can starve one connection's handshake past any timeout (the client
	// counts it open, the backend never accepts it: see the closing note of issue 12), and
	// the chance of that grows with every connection opened.
	const workers, total = 32, 1000
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				resp, err := call(&codec.Request{Operation: "x.y"})
				if err != nil || resp.Status != 200 {
					failed.Add(1)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed; first: %v", n, total, firstErr.Load())
	}
}
