package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// forwardAsync waits for ForwardAsync's one answer; a second call of done fails the test.
func forwardAsync(t testing.TB, c *Cluster, r *ProxyRequest, body []byte) (*ProxyResponse, error) {
	t.Helper()
	return awaitOnce(t, func(done func(*ProxyResponse, error)) { c.ForwardAsync(r, body, done) })
}

// readAnswer reads a forwarded answer's body, whole or streamed, and closes it.
func readAnswer(resp *ProxyResponse) ([]byte, error) {
	if resp.Body == nil {
		return resp.Whole, nil
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// The request goes out as Forward writes it (the client's Host, the body in the head's
// write), a short answer comes back whole, and one connection carries every request.
func TestForwardAsyncWholeAndReuse(t *testing.T) {
	addr, conns := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		b, _ := io.ReadAll(r.Body)
		body := fmt.Sprintf("%s %s host=%s via=%s body=%s", r.Method, r.URL, r.Host, r.Header.Get("Via"), b)
		fmt.Fprintf(conn, "HTTP/1.1 201 Created\r\nX-N: %d\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: %d\r\n\r\n%s", n, len(body), body)
		return false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	for i := range 10 {
		resp, err := forwardAsync(t, c, &ProxyRequest{Method: "PUT", Target: "/a?b=c", Host: "shop.example",
			Header: codec.Header{{Key: "x-k", Value: "v"}}}, []byte("hi"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := "PUT /a?b=c host=shop.example via=1.1 mgw body=hi"
		if resp.Body != nil || string(resp.Whole) != want || resp.Status != 201 || resp.ContentLength != int64(len(want)) {
			t.Fatalf("request %d: %d %q (streamed %v, length %d), want whole 201 %q", i, resp.Status, resp.Whole, resp.Body != nil, resp.ContentLength, want)
		}
		if resp.Header.Value("x-n") != fmt.Sprint(i+1) || resp.Header.Value("x-hop") != "" || resp.Header.Value("content-length") != "" {
			t.Fatalf("request %d: header %v: want x-n, without the hop-by-hop and framing fields", i, resp.Header)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 requests in turn opened %d connections, want 1", n)
	}
	if n := c.inFlight.Load(); n != 0 {
		t.Errorf("%d requests still counted in flight", n)
	}
}

// Every framing: answers that end in the bytes of the head's read come whole, the rest
// stream (past the deadline, which bounds the time to the head); a HEAD
// answer declares a length and carries nothing. Each is read right, and the connection
// goes on to the next request whenever its framing allows.
func TestForwardAsyncFramings(t *testing.T) {
	big := strings.Repeat("x", 100000)
	for _, tt := range []struct {
		name, method string
		parts        []string // written with a pause between them
		want         string
		whole        bool
		length       int64
		reuse        bool
	}{
		{"length", "GET", []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"}, "hello", true, 5, true},
		{"length-split", "GET", []string{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe", "llo"}, "hello", false, 5, true},
		{"chunked-whole", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"}, "hello", true, -1, true},
		{"chunked-split", "GET", []string{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n", "2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n"}, "hello", false, -1, true},
		{"long", "GET", []string{"HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(big)) + "\r\n\r\n" + big[:1000], big[1000:]}, big, false, int64(len(big)), true},
		{"until-close", "GET", []string{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhel", "lo"}, "hello", false, -1, false},
		{"interim", "GET", []string{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}, "ok", true, 2, true},
		{"head", "HEAD", []string{"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"}, "", true, 1000, true},
		{"204", "GET", []string{"HTTP/1.1 204 No Content\r\n\r\n"}, "", true, -1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
				io.Copy(io.Discard, r.Body)
				for i, p := range tt.parts {
					if i > 0 {
						time.Sleep(20 * time.Millisecond)
					}
					if _, err := io.WriteString(conn, p); err != nil {
						return true
					}
				}
				return !tt.reuse
			})
			c := asyncCluster(t, config.Cluster{}, Options{}, addr)
			for i := range 3 {
				resp, err := forwardAsync(t, c, &ProxyRequest{Method: tt.method, Target: "/"}, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if whole := resp.Body == nil; whole != tt.whole {
					t.Errorf("request %d: whole %v, want %v", i, whole, tt.whole)
				}
				got, err := readAnswer(resp)
				if err != nil || string(got) != tt.want || resp.ContentLength != tt.length {
					t.Fatalf("request %d: %d bytes, length %d, err %v; want %d bytes, length %d", i, len(got), resp.ContentLength, err, len(tt.want), tt.length)
				}
			}
			want := int64(1)
			if !tt.reuse {
				want = 3
			}
			waitFor(t, "the connections to settle", func() bool { return conns.Load() == want && c.inFlight.Load() == 0 })
		})
	}
}

// A long answer to a slow reader: the backend is held back by TCP (the pipe pauses its
// connection's reads) rather than buffered whole, every byte arrives in order, and the
// connection carries the next request.
func TestForwardAsyncStreamsToSlowReader(t *testing.T) {
	const size = 8 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	var sent atomic.Int64
	addr, conns := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		for off := 0; off < size; off += 64 << 10 {
			m, err := conn.Write(body[off : off+64<<10])
			sent.Add(int64(m))
			if err != nil {
				return true
			}
		}
		return false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	for i := range 2 {
		sent.Store(0)
		resp, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/big"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Body == nil {
			t.Fatal("an 8 MiB answer came whole")
		}
		var got bytes.Buffer
		buf := make([]byte, 16<<10)
		for n := 0; ; n++ {
			if n == 20 {
				// The reader lags: past the pipe's bound, the rest waits in the kernel
				// (the backend's connection is not read), not in the gateway's memory.
				time.Sleep(100 * time.Millisecond)
				held := resp.Body.(*streamBody).st.p.Buffered()
				if held > streamHigh+128<<10 {
					t.Errorf("the pipe holds %d bytes for a lagging reader; its bound is %d", held, streamHigh)
				}
				if s := sent.Load(); s < streamHigh+int64(got.Len()) {
					t.Errorf("the backend sent only %d bytes: the test does not fill the pipe", s)
				}
			}
			m, err := resp.Body.Read(buf)
			got.Write(buf[:m])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		resp.Body.Close()
		if !bytes.Equal(got.Bytes(), body) {
			t.Fatalf("request %d: %d bytes arrived, not the %d sent in order", i, got.Len(), size)
		}
	}
	waitFor(t, "one connection, nothing in flight", func() bool { return conns.Load() == 1 && c.inFlight.Load() == 0 })
}

// A backend that breaks off a streamed body: the reader sees an error, not a short EOF,
// and the next request gets a fresh connection.
func TestForwardAsyncBodyCutShort(t *testing.T) {
	addr, conns := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc")
		time.Sleep(20 * time.Millisecond)
		return true
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	for i := range 2 {
		resp, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := readAnswer(resp)
		if err == nil || string(b) != "abc" {
			t.Fatalf("request %d: %q, %v; want abc and an error", i, b, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if n := c.inFlight.Load(); n != 0 {
		t.Errorf("%d requests still counted in flight", n)
	}
}

// A reader that closes a streamed body early closes the connection under it (the rest
// of the body is still on it); the next request is served on another.
func TestForwardAsyncReaderCloses(t *testing.T) {
	addr, conns := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		if n == 1 {
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 1<<30)
			chunk := make([]byte, 64<<10)
			for {
				if _, err := conn.Write(chunk); err != nil {
					return true
				}
			}
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	resp, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := readAnswer(resp); string(b) != "ok" {
		t.Fatalf("second request: %q", b)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	waitFor(t, "nothing in flight", func() bool { return c.inFlight.Load() == 0 })
}

// A backend that stops sending mid-body while the reader waits: the reader gets an error
// after two of the pool's idle timeouts instead of waiting for good, and the host is released.
func TestForwardAsyncStalledBody(t *testing.T) {
	addr, _ := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
		time.Sleep(10 * time.Second)
		return true
	})
	c := asyncCluster(t, config.Cluster{IdleConnTimeout: config.Duration(300 * time.Millisecond)}, Options{}, addr)
	resp, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/", Timeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { _, err := readAnswer(resp); got <- err }()
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stalled body ended with %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still waits for a backend that stalled")
	}
	waitFor(t, "nothing in flight", func() bool { return c.inFlight.Load() == 0 })
}

// No answer before the deadline: Timeout, sent. A request the gateway cannot write is
// Invalid, and nothing is sent.
func TestForwardAsyncTimeoutAndInvalid(t *testing.T) {
	addr, _ := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		time.Sleep(time.Second)
		return true
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	_, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/", Timeout: 100 * time.Millisecond}, nil)
	if e := mustUpstreamError(t, err); e.Kind != Timeout || !e.Sent {
		t.Errorf("slow backend: kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
	for _, r := range []*ProxyRequest{{Method: "GE T", Target: "/"}, {Method: "GET", Target: "http://x/"}, {Method: "GET", Target: "/", Host: "a\nb"}} {
		_, err := forwardAsync(t, c, r, nil)
		if e := mustUpstreamError(t, err); e.Kind != Invalid || e.Sent {
			t.Errorf("%+v: kind %v sent %v: %v", r, e.Kind, e.Sent, e)
		}
	}
}

// Many forwards at once, long and short answers, readers that read to the end or give
// up at a random point, deadlines that fire mid-answer: each is answered once, and
// nothing stays counted in flight. Run with -race.
func TestForwardAsyncRaces(t *testing.T) {
	addr, _ := rawServer(t, func(n int, r *http.Request, conn net.Conn) bool {
		size := 10 + n%5*40000
		if n%7 == 0 {
			time.Sleep(30 * time.Millisecond)
		}
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
		_, err := conn.Write(bytes.Repeat([]byte{'z'}, size))
		return err != nil
	})
	c := asyncCluster(t, config.Cluster{}, Options{}, addr)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 40 {
				timeout := time.Second
				if rng.IntN(5) == 0 {
					timeout = time.Duration(rng.IntN(30)) * time.Millisecond
				}
				resp, err := forwardAsync(t, c, &ProxyRequest{Method: "GET", Target: "/", Timeout: timeout}, nil)
				if err != nil {
					continue
				}
				if resp.Body == nil {
					continue
				}
				if rng.IntN(2) == 0 {
					io.CopyN(io.Discard, resp.Body, int64(rng.IntN(50000)))
				} else {
					io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "nothing in flight", func() bool { return c.inFlight.Load() == 0 })
}
