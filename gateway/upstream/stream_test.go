package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
)

const streamSize = 32 << 20

// countingReader produces n bytes lazily and counts what has been read from it.
type countingReader struct {
	left int64
	read atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		p[i] = byte(i)
	}
	r.left -= int64(len(p))
	r.read.Add(int64(len(p)))
	return len(p), nil
}

// TestForwardStreamsBothWays sends 32 MiB up and 32 MiB down through Forward and checks,
// by counting, that each side saw the first MiB long before the other side had produced
// everything: nothing in between buffered the whole body.
func TestForwardStreamsBothWays(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", known), func(t *testing.T) {
			up := &countingReader{left: streamSize}
			var upReadAtFirstMiB, downWritten atomic.Int64
			addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, err := io.CopyN(io.Discard, r.Body, 1<<20)
				if err != nil || n != 1<<20 {
					http.Error(w, "short upload", 400)
					return
				}
				upReadAtFirstMiB.Store(up.read.Load())
				rest, err := io.Copy(io.Discard, r.Body)
				if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				w.Header().Set("X-Upload", strconv.FormatInt(n+rest, 10))
				if known {
					w.Header().Set("Content-Length", strconv.Itoa(streamSize))
				}
				down := &countingReader{left: streamSize}
				buf := make([]byte, 32<<10)
				for {
					k, err := down.Read(buf)
					if k > 0 {
						if _, werr := w.Write(buf[:k]); werr != nil {
							return
						}
						downWritten.Add(int64(k))
					}
					if err != nil {
						return
					}
				}
			}))
			c := newCluster(t, config.Cluster{}, nil, addr)
			length := int64(streamSize)
			if !known {
				length = -1
			}
			resp, err := c.Forward(context.Background(), &ProxyRequest{
				Method: "POST", Target: "/upload", Host: "h", Body: up, ContentLength: length, ClientAddr: client,
			})
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			defer resp.Body.Close()
			if resp.Status != 200 || resp.Header.Value("x-upload") != strconv.Itoa(streamSize) {
				t.Fatalf("status %d, backend received %s bytes", resp.Status, resp.Header.Value("x-upload"))
			}
			if got := upReadAtFirstMiB.Load(); got >= streamSize {
				t.Errorf("backend saw its first MiB only after all %d bytes were read from the client", got)
			}
			if known && resp.ContentLength != streamSize || !known && resp.ContentLength != -1 {
				t.Errorf("response ContentLength %d", resp.ContentLength)
			}
			if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
				t.Fatal(err)
			}
			if got := downWritten.Load(); got >= streamSize {
				t.Errorf("backend wrote all %d bytes before the caller read its first MiB", got)
			}
			rest, err := io.Copy(io.Discard, resp.Body)
			if err != nil || rest+1<<20 != streamSize {
				t.Errorf("download: %d bytes, err %v", rest+1<<20, err)
			}
			if c.InFlight() != 1 {
				t.Errorf("in flight %d before Close, want 1", c.InFlight())
			}
			resp.Body.Close()
			if c.InFlight() != 0 {
				t.Errorf("in flight %d after Close", c.InFlight())
			}
		})
	}
}

func TestForwardBodyCutShortCountsAsFailure(t *testing.T) {
	c := newCluster(t, config.Cluster{}, nil, serve(t, hijacker("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")))
	resp, err := c.Forward(context.Background(), &ProxyRequest{Method: "GET", Target: "/"})
	if err != nil {
		t.Fatalf("head arrived, Forward must succeed: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("reading a cut body succeeded")
	}
	resp.Body.Close()
	if h := c.Hosts()[0]; h.Failures != 1 || h.InFlight != 0 {
		t.Errorf("host after a cut body: failures %d in flight %d", h.Failures, h.InFlight)
	}
}

// Closing the body from another goroutine while a read is blocked aborts the stream
// (the client went away); it is not the backend's failure.
func TestForwardCloseWhileReading(t *testing.T) {
	b := newBlocker()
	defer close(b.release)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head")
		w.(http.Flusher).Flush()
		b.ServeHTTP(w, r)
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	resp, err := c.Forward(context.Background(), &ProxyRequest{Method: "GET", Target: "/"})
	if err != nil {
		t.Fatal(err)
	}
	<-b.entered
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the reader block
	resp.Body.Close()
	if err := <-done; err == nil {
		t.Error("read after Close succeeded")
	}
	if h := c.Hosts()[0]; h.Failures != 0 || h.InFlight != 0 {
		t.Errorf("after an aborted stream: failures %d in flight %d", h.Failures, h.InFlight)
	}
}
