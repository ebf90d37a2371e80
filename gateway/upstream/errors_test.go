package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

func apiReq(op string) *codec.Request {
	return &codec.Request{Protocol: codec.MMTP, Operation: op, Body: []byte("x"), Conn: codec.ConnInfo{ClientAddr: client}}
}

func TestConnectRefused(t *testing.T) {
	c := newCluster(t, config.Cluster{}, nil, closedPort(t))
	_, err := c.Call(context.Background(), apiReq("a.b"), 0)
	e := mustUpstreamError(t, err)
	if e.Kind != ConnectFailed || e.Sent || !e.Retriable() || e.Status != 503 || e.Code != codec.ErrUnavailable {
		t.Errorf("got kind %v sent %v status %d code %s: %v", e.Kind, e.Sent, e.Status, e.Code, e)
	}
	if e.Host == "" || e.Cluster != "test" {
		t.Errorf("error does not say where: %v", e)
	}
	if body := string(e.Response().Body); !strings.Contains(body, "could be reached") {
		t.Errorf("503 says %q, want that no backend could be reached (not a 502's 'backend failed')", body)
	}
	if c.InFlight() != 0 {
		t.Errorf("in flight %d after failure", c.InFlight())
	}
}

// blocker is a backend whose handler waits until released or the request is canceled.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
	io.WriteString(w, "late")
}

func TestSlowBackendTimeout(t *testing.T) {
	b := newBlocker()
	defer close(b.release)
	c := newCluster(t, config.Cluster{}, nil, serve(t, b))
	_, err := c.Call(context.Background(), apiReq("a.b"), 100*time.Millisecond)
	e := mustUpstreamError(t, err)
	if e.Kind != Timeout || !e.Sent || e.Retriable() || e.Status != 504 || e.Code != codec.ErrUpstreamTimeout {
		t.Errorf("got kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
	}
}

func TestSlowBodyTimeout(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	_, err := c.Call(context.Background(), apiReq("a.b"), 150*time.Millisecond)
	if e := mustUpstreamError(t, err); e.Kind != Timeout || !e.Sent {
		t.Errorf("got kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
}

func TestCallerCanceled(t *testing.T) {
	b := newBlocker()
	defer close(b.release)
	c := newCluster(t, config.Cluster{}, nil, serve(t, b))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-b.entered; cancel() }()
	_, err := c.Call(ctx, apiReq("a.b"), time.Minute)
	if e := mustUpstreamError(t, err); e.Kind != Canceled || e.Retriable() {
		t.Errorf("got kind %v retriable %v: %v", e.Kind, e.Retriable(), e)
	}
}

// hijacker answers with a head promising more body than it sends, then closes.
func hijacker(partial string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		bw.WriteString(partial)
		bw.Flush()
		conn.Close()
	}
}

func TestBackendClosesMidResponse(t *testing.T) {
	for name, partial := range map[string]string{
		"mid-body":    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
		"mid-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
		"no-answer":   "",
		"garbage":     "NOT HTTP\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, config.Cluster{}, nil, serve(t, hijacker(partial)))
			_, err := c.Call(context.Background(), apiReq("a.b"), 0)
			e := mustUpstreamError(t, err)
			if e.Kind != Failed || !e.Sent || e.Retriable() || e.Status != 502 {
				t.Errorf("got kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	big := make([]byte, 2048)
	for name, chunked := range map[string]bool{"content-length": false, "chunked": true} {
		t.Run(name, func(t *testing.T) {
			addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", "2048")
				}
				w.Write(big[:1024])
				w.(http.Flusher).Flush()
				w.Write(big[1024:])
			}))
			cfg := config.Cluster{Name: "test", Hosts: []string{addr}}
			c, err := New(&cfg, Options{MaxResponseBytes: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Call(context.Background(), apiReq("a.b"), 0)
			e := mustUpstreamError(t, err)
			if e.Kind != Failed || e.Status != 502 || !errors.Is(e, errTooLarge) {
				t.Errorf("got kind %v status %d: %v", e.Kind, e.Status, e)
			}
		})
	}
}

func TestMaxInFlightOverloaded(t *testing.T) {
	b := newBlocker()
	set := metrics.NewSet()
	c := newCluster(t, config.Cluster{MaxInFlight: 2}, set, serve(t, b))
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Call(context.Background(), apiReq("a.b"), 0)
			errs <- err
		}()
	}
	<-b.entered
	<-b.entered
	_, err := c.Call(context.Background(), apiReq("a.b"), 0)
	e := mustUpstreamError(t, err)
	if e.Kind != Overloaded || e.Sent || !e.Retriable() || e.Status != 503 || e.Code != codec.ErrUnavailable {
		t.Errorf("got kind %v sent %v status %d: %v", e.Kind, e.Sent, e.Status, e)
	}
	if got := gaugeLine(set, `mgw_upstream_overloaded_total{cluster="test"}`); got != "1" {
		t.Errorf("overloaded_total = %s", got)
	}
	if got := gaugeLine(set, `mgw_upstream_in_flight{cluster="test"}`); got != "2" {
		t.Errorf("in_flight = %s at the cap", got)
	}
	close(b.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("call under the cap failed: %v", err)
		}
	}
	if c.InFlight() != 0 {
		t.Errorf("in flight %d", c.InFlight())
	}
	if _, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil {
		t.Errorf("call after the cap freed: %v", err)
	}
}

func TestForwardTimeoutAndRefused(t *testing.T) {
	b := newBlocker()
	defer close(b.release)
	c := newCluster(t, config.Cluster{}, nil, serve(t, b))
	_, err := c.Forward(context.Background(), &ProxyRequest{Method: "GET", Target: "/", Timeout: 100 * time.Millisecond})
	if e := mustUpstreamError(t, err); e.Kind != Timeout || !e.Sent {
		t.Errorf("timeout: got kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
	c2 := newCluster(t, config.Cluster{}, nil, closedPort(t))
	_, err = c2.Forward(context.Background(), &ProxyRequest{Method: "GET", Target: "/"})
	if e := mustUpstreamError(t, err); e.Kind != ConnectFailed || e.Sent {
		t.Errorf("refused: got kind %v sent %v: %v", e.Kind, e.Sent, e)
	}
	_, err = c2.Forward(context.Background(), &ProxyRequest{Method: "GE T", Target: "/"})
	if e := mustUpstreamError(t, err); e.Kind != Invalid {
		t.Errorf("bad method: got kind %v", e.Kind)
	}
	_, err = c2.Forward(context.Background(), &ProxyRequest{Method: "GET", Target: "http://x/"})
	if e := mustUpstreamError(t, err); e.Kind != Invalid {
		t.Errorf("absolute target: got kind %v", e.Kind)
	}
}
