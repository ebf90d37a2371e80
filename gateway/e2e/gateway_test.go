package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// basicConfig routes demo.* and / to the cluster "demo" at backendAddr.
func basicConfig(backendAddr, extra string) string {
	return fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: demo, hosts: [%q], timeout: 20s}
routes:
  - {api: "demo.*", split: {demo: 100}}
  - {path: /, split: {demo: 100}}
%s`, backendAddr, extra)
}

func call(t testing.TB, c *client.Client, op string, body []byte) *codec.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, op, nil, body)
	if err != nil {
		t.Fatalf("call %s: %v", op, err)
	}
	return resp
}

func TestCurlAndMMTPReachTheBackend(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))

	out, err := curl(t, "-d", "hi", "http://"+g.addrs["web"]+"/api/demo.echo")
	if err != nil || out != "hi" {
		t.Fatalf("curl api: %q, %v", out, err)
	}
	// A plain path is reverse-proxied as is: the demo backend describes what it got.
	out, err = curl(t, "http://"+g.addrs["web"]+"/some/page?q=1")
	if err != nil || !strings.Contains(out, `"/some/page"`) || !strings.Contains(out, "X-Forwarded-For") {
		t.Fatalf("curl proxy: %q, %v", out, err)
	}
	c := g.mmtpClient(t, "mobile", client.Options{})
	resp := call(t, c, "demo.echo", []byte("hello"))
	if resp.Status != 200 || string(resp.Body) != "hello" {
		t.Fatalf("mmtp echo: %d %q", resp.Status, resp.Body)
	}
	resp = call(t, c, "demo.status", []byte("418"))
	if resp.Status != 418 {
		t.Fatalf("demo.status 418 answered %d", resp.Status)
	}
	resp = call(t, c, "nothing.here", nil)
	if resp.Status != 404 || resp.Header.Value("error") != codec.ErrNoRoute {
		t.Fatalf("unrouted op: %d %v", resp.Status, resp.Header)
	}
}

func TestMMTPConcurrentRequestsOutOfOrder(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	c := g.mmtpClient(t, "mobile", client.Options{})
	// Sent slowest first; each answer must come back on its own stream, and a fast one
	// must not wait behind a slow one.
	delays := []int{900, 600, 300, 0}
	order := make(chan int, len(delays))
	var wg sync.WaitGroup
	for _, d := range delays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := call(t, c, "demo.sleep", []byte(fmt.Sprint(d)))
			if resp.Status != 200 || !strings.Contains(string(resp.Body), fmt.Sprint(d)) {
				t.Errorf("sleep %d: %d %q", d, resp.Status, resp.Body)
			}
			order <- d
		}()
		time.Sleep(20 * time.Millisecond) // so the sends are in this order
	}
	wg.Wait()
	close(order)
	var got []int
	for d := range order {
		got = append(got, d)
	}
	if fmt.Sprint(got) != "[0 300 600 900]" {
		t.Fatalf("completion order %v, want fastest first", got)
	}
}

func TestUpstreamFailuresMapToStatuses(t *testing.T) {
	bp, baddr := backend(t, "b1")
	// Testers' forced routing picks the cluster per request by a header.
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: live, hosts: [%q], timeout: 500ms}
  - {name: down, hosts: [%q], timeout: 1s}
  - {name: dies, hosts: [%q], timeout: 10s}
routes:
  - api: "demo.*"
    split: {live: 100}
    force:
      - {header: {name: x-target, value: down}, cluster: down}
      - {header: {name: x-target, value: dies}, cluster: dies}
`, baddr, closedAddr(t), baddr))
	c := g.mmtpClient(t, "mobile", client.Options{})
	check := func(target, op, body string, status int, code string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := c.Call(ctx, op, codec.Header{{Key: "x-target", Value: target}}, []byte(body))
		if err != nil || resp.Status != status || resp.Header.Value("error") != code {
			t.Fatalf("%s via %s: %v %v, want %d %s", op, target, resp, err, status, code)
		}
		// The same over HTTP, with the same status and error header.
		out, err := curl(t, "-i", "-H", "X-Target: "+target, "-d", body, "http://"+g.addrs["web"]+"/api/"+op)
		if err != nil || !strings.HasPrefix(out, fmt.Sprintf("HTTP/1.1 %d", status)) || !strings.Contains(out, "Error: "+code) {
			t.Fatalf("curl %s via %s: %q %v, want %d %s", op, target, out, err, status, code)
		}
	}
	check("down", "demo.echo", "x", 503, codec.ErrUnavailable)         // connection refused
	check("live", "demo.sleep", "2000", 504, codec.ErrUpstreamTimeout) // slower than 500ms

	// A backend that dies mid-request: 502.
	done := make(chan *codec.Response, 1)
	go func() {
		resp, err := c.Call(context.Background(), "demo.sleep", codec.Header{{Key: "x-target", Value: "dies"}}, []byte("5000"))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	time.Sleep(500 * time.Millisecond)
	bp.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case resp := <-done:
		if resp == nil || resp.Status != 502 || resp.Header.Value("error") != codec.ErrUpstream {
			t.Fatalf("backend died: %v", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the backend died")
	}
}

func TestLargeBodiesBothWays(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	body := make([]byte, 3<<20)
	rand.Read(body)
	c := g.mmtpClient(t, "mobile", client.Options{})
	resp := call(t, c, "demo.echo", body)
	if resp.Status != 200 || !bytes.Equal(resp.Body, body) {
		t.Fatalf("mmtp 3 MiB echo: status %d, %d bytes back", resp.Status, len(resp.Body))
	}
	resp = call(t, c, "demo.size", []byte("4000000"))
	if resp.Status != 200 || len(resp.Body) != 4000000 {
		t.Fatalf("mmtp demo.size: %d, %d bytes", resp.Status, len(resp.Body))
	}
	f := filepath.Join(t.TempDir(), "body")
	os.WriteFile(f, body, 0o600)
	out, err := curl(t, "--data-binary", "@"+f, "http://"+g.addrs["web"]+"/api/demo.echo")
	if err != nil || out != string(body) {
		t.Fatalf("curl 3 MiB echo: %d bytes back, %v", len(out), err)
	}
	// Through the plain proxy: a short request body is read whole and forwarded without
	// a task waiting; the 16 MB answer streams back through the reactor's pipe.
	out, err = curl(t, "-d", "16000000", "http://"+g.addrs["web"]+"/p/demo.size")
	if err != nil || len(out) != 16000000 || strings.Trim(out, "x") != "" {
		t.Fatalf("curl 16 MB download through the proxy: %d bytes, %v", len(out), err)
	}
	// Through the plain proxy a body larger than any API limit streams through.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	os.WriteFile(f, big, 0o600)
	out, err = curl(t, "--data-binary", "@"+f, "-H", "Content-Type: application/octet-stream", "http://"+g.addrs["web"]+"/upload")
	if err != nil || !strings.Contains(out, fmt.Sprintf(`"body_bytes": %d`, len(big))) && !strings.Contains(out, fmt.Sprintf(`"body_bytes":%d`, len(big))) {
		t.Fatalf("curl 16 MiB through the proxy: %.300q %v", out, err)
	}
}

func TestDrainOnSIGTERMLosesNothing(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	goaway := make(chan string, 1)
	c := g.mmtpClient(t, "mobile", client.Options{OnGoAway: func(_ uint32, reason string) { goaway <- reason }})
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			resp, err := c.Call(context.Background(), "demo.sleep", nil, []byte("4000"))
			if err != nil || resp.Status != 200 {
				errs <- fmt.Errorf("mmtp: %v %v", resp, err)
			}
		}()
		go func() {
			defer wg.Done()
			out, err := curl(t, "-d", "4000", "http://"+g.addrs["web"]+"/api/demo.sleep")
			if err != nil || !strings.Contains(out, "4000") {
				errs <- fmt.Errorf("http: %q %v", out, err)
			}
		}()
	}
	// SIGTERM only once every request is in the gateway.
	waitFor(t, 20*time.Second, func() bool { return g.stats(t).InFlight >= 2*n })
	g.cmd.Process.Signal(syscall.SIGTERM)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case r := <-goaway:
		if r != mmtp.ReasonShutdown {
			t.Errorf("GOAWAY reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("no GOAWAY on drain")
	}
	if code := g.wait(15 * time.Second); code != 0 {
		t.Fatalf("mgw exited %d after drain", code)
	}
	// After the drain nothing listens.
	if conn, err := net.DialTimeout("tcp", g.addrs["mobile"], time.Second); err == nil {
		conn.Close()
		t.Fatal("MMTP listener still accepts after drain")
	}
}

func TestProtocolErrorClosesOnlyThatConnection(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	good := g.mmtpClient(t, "mobile", client.Options{})
	conn, err := net.Dial("tcp", g.addrs["mobile"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bad := mmtp.AppendRequest(nil, 1, "demo.echo", nil, []byte("x"), false)
	bad[2] = 0x02 // version 2
	conn.Write(bad)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	d := mmtp.NewDecoder(nil)
	f, err := d.ReadFrame(conn)
	if err != nil {
		t.Fatalf("reading GOAWAY: %v", err)
	}
	if f.Type != mmtp.TypeGoAway {
		t.Fatalf("got %s, want GOAWAY", f.Type)
	}
	if r, _ := f.Get("reason"); string(r) != mmtp.ReasonProtocolError {
		t.Fatalf("GOAWAY reason %q", r)
	}
	if _, err := d.ReadFrame(conn); !errors.Is(err, io.EOF) {
		t.Fatalf("after GOAWAY: %v, want EOF", err)
	}
	if resp := call(t, good, "demo.echo", []byte("still")); string(resp.Body) != "still" {
		t.Fatalf("other connection: %q", resp.Body)
	}
}

// Answer bodies are pooled buffers that go back once written (codec.ReleaseBody): many
// calls at once, over both protocols and the proxied path, with bodies of many sizes
// around the pool's limit, must each get their own bytes back, never another call's.
func TestAnswersKeepTheirOwnBodies(t *testing.T) {
	_, baddr := backend(t, "b1")
	g := serve(t, basicConfig(baddr, ""))
	c := g.mmtpClient(t, "mobile", client.Options{})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()
	body := func(worker, i int) []byte {
		n := 1 + (worker*131+i*977)%(codec.PooledBodyMax+512)
		b := bytes.Repeat([]byte{byte('a' + (worker+i)%26)}, n)
		copy(b, fmt.Sprintf("%d/%d:", worker, i))
		return b
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				want := body(w, i)
				var got []byte
				if w%3 == 0 {
					resp := call(t, c, "demo.echo", want)
					got = resp.Body
				} else {
					path := "/api/demo.echo" // an API call
					if w%3 == 2 {
						path = "/demo.echo" // proxied as is: the demo backend echoes there too
					}
					resp, err := hc.Post("http://"+g.addrs["web"]+path, "application/octet-stream", bytes.NewReader(want))
					if err != nil {
						t.Errorf("http call %d/%d: %v", w, i, err)
						return
					}
					got, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Errorf("http call %d/%d: %v", w, i, err)
						return
					}
				}
				if !bytes.Equal(got, want) {
					t.Errorf("call %d/%d: %d bytes back, want its own %d (%.20q...)", w, i, len(got), len(want), got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
