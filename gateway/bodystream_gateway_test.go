package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlowBackendDoesNotHoldReactor: with a single reactor worker, a 4 MiB upload proxied
// to a backend that does not read it yet must not hold that worker: another connection's
// request is answered meanwhile, and the upload arrives whole once the backend reads.
// (With an io.Pipe between them, the worker blocked in the pipe write until the backend
// read, and nothing else on the gateway was served.)
func TestSlowBackendDoesNotHoldReactor(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/up" {
			<-release
			n, err := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d %v", n, err)
			return
		}
		fmt.Fprint(w, "fast")
	}))
	defer be.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	g := runGateway(t, fmt.Sprintf(`
runtime: {workers: 1}
listeners:
  - {name: web, listen: "127.0.0.1:0", protocol: http1}
clusters:
  - {name: be, hosts: [%q], timeout: 20s}
routes:
  - {path: /, split: {be: 100}}
`, be.Listener.Addr().String()), Options{})
	addr := g.Addr("web").String()

	const size = 4 << 20
	up, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(up, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		if err == nil {
			_, err = up.Write(make([]byte, size))
		}
		wrote <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the body start streaming at the gateway

	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/fast")
	if err != nil {
		t.Fatalf("another request while the backend holds an upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "fast" {
		t.Fatalf("other request: %d %q", resp.StatusCode, body)
	}

	close(release)
	if err := <-wrote; err != nil {
		t.Fatalf("upload: %v", err)
	}
	up.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(up), nil)
	if err != nil {
		t.Fatalf("upload answer: %v", err)
	}
	got, _ := io.ReadAll(r.Body)
	if want := fmt.Sprintf("%d <nil>", size); r.StatusCode != 200 || !strings.HasPrefix(string(got), want) {
		t.Fatalf("upload answer: %d %q, want %q", r.StatusCode, got, want)
	}
}
