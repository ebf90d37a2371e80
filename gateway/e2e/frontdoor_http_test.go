package e2e

// HTTP/1.1 on the front door: timeouts, the connection cap, pipelining, keep-alive and
// close, Expect, HEAD, chunked bodies and request-smuggling framing. Run by TestFrontDoor.

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// testHTTPPipelinedBehindSlowAnswer: a pipelined request waiting behind a slow answer is
// not a slow head; the frame timeout must not answer 408 into the middle of it.
func testHTTPPipelinedBehindSlowAnswer(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["wframe"])
	r.send([]byte("POST /api/demo.sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n2500" +
		"GET /behind HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || body != "2500" {
		t.Fatalf("slow first answer: %d %q", resp.StatusCode, body)
	}
	if resp, body := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/behind"`) {
		t.Fatalf("pipelined second answer: %d %q", resp.StatusCode, body)
	}
}

func testHTTPSlowHeaders(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["wframe"])
	r.send([]byte("GET /slow HTTP/1.1\r\nHost: x\r\nX-Half: "))
	start := time.Now()
	resp, _ := r.httpResponse(5*time.Second, "")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow headers: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("408 after %s, before the 1s frame timeout", d)
	}
	r.closed(5 * time.Second)
}

// testHTTPStalledBody: an API body that stops arriving is answered 408 once the
// connection was idle for idle_timeout, then closed.
func testHTTPStalledBody(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["widle"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
	start := time.Now()
	if resp, _ := r.httpResponse(6*time.Second, ""); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("408 after %s, before the 1s idle timeout", d)
	}
	r.closed(3 * time.Second)
}

func testHTTPKeepAliveIdle(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["widle"])
	r.send([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive request: %d close=%v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	r.closed(5 * time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s idle timeout", d)
	}
}

func testHTTPMaxConns(t *testing.T, fd *frontDoor) {
	addr := fd.g.addrs["wcap"]
	var conns []*doorConn
	for i := 0; i < 5; i++ {
		r := dialDoor(t, addr)
		r.send([]byte("GET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
		if resp, _ := r.httpResponse(10*time.Second, ""); resp.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
		conns = append(conns, r)
	}
	// The sixth connects (the kernel's backlog holds it) but is not served.
	sixth := dialDoor(t, addr)
	sixth.send([]byte("GET /sixth HTTP/1.1\r\nHost: x\r\n\r\n"))
	sixth.c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if b, err := sixth.br.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("sixth connection answered over max_conns 5: %q %v", b, err)
	}
	closedAt := time.Now()
	conns[0].c.Close()
	resp, body := sixth.httpResponse(10*time.Second, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "/sixth") {
		t.Fatalf("sixth connection after one closed: %d %q", resp.StatusCode, body)
	}
	t.Logf("sixth served %s after a slot freed", time.Since(closedAt))
}

func testHTTPPipelined(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	// The slow one first: answers must still come in request order.
	r.send([]byte("POST /api/demo.sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n200" +
		"GET /p2 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree" +
		"GET /p4 HTTP/1.1\r\nHost: x\r\n\r\n"))
	check := func(what string, ok func(string) bool) {
		t.Helper()
		resp, body := r.httpResponse(10*time.Second, "")
		if resp.StatusCode != 200 || !ok(body) {
			t.Fatalf("pipelined %s: %d %q", what, resp.StatusCode, body)
		}
	}
	check("sleep", func(b string) bool { return b == "200" })
	check("/p2", func(b string) bool { return strings.Contains(b, `"/p2"`) })
	check("echo", func(b string) bool { return b == "three" })
	check("/p4", func(b string) bool { return strings.Contains(b, `"/p4"`) })
}

func testHTTPConnectionClose(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("Connection: close: %d close=%v", resp.StatusCode, resp.Close)
	}
	r.closed(3 * time.Second)
	// The API path too.
	r = dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "hi" || !resp.Close {
		t.Fatalf("API Connection: close: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	r.closed(3 * time.Second)
}

func testHTTP10(t *testing.T, fd *frontDoor) {
	for _, req := range []string{
		"GET /old HTTP/1.0\r\n\r\n",
		"POST /api/demo.echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nold",
	} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte(req))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body == "" {
			t.Fatalf("HTTP/1.0 %q: %d %q", req, resp.StatusCode, body)
		}
		r.closed(3 * time.Second)
	}
}

func testHTTPExpectContinue(t *testing.T, fd *frontDoor) {
	for _, path := range []string{"/api/demo.echo", "/upload"} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("%s: first line %q %v, want 100 Continue", path, line, err)
		}
		if blank, err := r.br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("%s: after 100: %q %v", path, blank, err)
		}
		r.send([]byte("hello"))
		resp, body := r.httpResponse(5*time.Second, "")
		if resp.StatusCode != 200 || (path == "/api/demo.echo" && body != "hello") ||
			(path == "/upload" && !bytes.Contains([]byte(body), []byte(`"body_bytes":5`)) && !strings.Contains(body, `"body_bytes": 5`)) {
			t.Fatalf("%s after 100: %d %q", path, resp.StatusCode, body)
		}
	}
}

// testHTTPExpectContinueTooLarge: an API body declared over the limit is refused before
// the client is invited to send it.
func testHTTPExpectContinueTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared 5 MB API body with Expect: %d, want 413 (and no 100 first)", resp.StatusCode)
	}
	r.closed(3 * time.Second)
}

func testHTTPHeadTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("h", 20<<10) + "\r\n\r\n"))
	if resp, _ := r.httpResponse(5*time.Second, ""); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("20 KiB head over the 16 KiB default: %d, want 431", resp.StatusCode)
	}
	r.closed(3 * time.Second)
}

// testHTTPPipelinedAfterClose: a request pipelined behind `Connection: close` is not
// served; an HTTP/1.0 client asking for keep-alive gets it.
func testHTTPPipelinedAfterClose(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
		"POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nextra"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/last"`) {
		t.Fatalf("request with Connection: close: %d %q", resp.StatusCode, body)
	}
	r.closed(3 * time.Second)

	r = dialDoor(t, fd.g.addrs["web"])
	for i := 0; i < 2; i++ {
		r.send([]byte("POST /api/demo.echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nkeep"))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "keep" || resp.Close {
			t.Fatalf("HTTP/1.0 keep-alive request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
}

// testHTTPSlowFirstHeaders: a first request whose head stalls gets its 408 from the
// handshake timeout, when that comes before the frame timeout, as a later one gets it from
// the frame timeout (testHTTPSlowHeaders).
func testHTTPSlowFirstHeaders(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["whs"])
	r.send([]byte("GET /slow HTTP/1.1\r\nHost: x\r\nX-Half: "))
	start := time.Now()
	resp, _ := r.httpResponse(5*time.Second, "")
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("slow first headers: %d close=%v, want 408 and close", resp.StatusCode, resp.Close)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("408 after %s, before the 1s handshake timeout", d)
	}
	r.closed(5 * time.Second)
}

func testHTTPHandshakeTimeout(t *testing.T, fd *frontDoor) {
	silent := dialDoor(t, fd.g.addrs["whs"])
	start := time.Now()
	silent.closed(5 * time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s handshake timeout", d)
	}
}

// testHTTPHeadThenGet: the answer to HEAD carries no body, or the pipelined GET behind
// it would be misread.
func testHTTPHeadThenGet(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, body := r.httpResponse(5*time.Second, http.MethodHead); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || !strings.Contains(body, `"/g"`) {
		t.Fatalf("GET after HEAD: %d %q", resp.StatusCode, body)
	}
}

func testHTTPChunkedBodies(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["web"])
	r.send([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"))
	if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 200 || body != "hello world" {
		t.Fatalf("chunked API body: %d %q", resp.StatusCode, body)
	}
	resp, body := r.httpResponse(5*time.Second, "")
	if resp.StatusCode != 200 || !strings.Contains(strings.ReplaceAll(body, " ", ""), `"body_bytes":7`) {
		t.Fatalf("chunked proxied body: %d %q", resp.StatusCode, body)
	}
}

// testHTTPPipelinedBurst: many requests in one write, API and proxied mixed, answered in
// order (each answer resumes reading and the held bytes are handed back).
func testHTTPPipelinedBurst(t *testing.T, fd *frontDoor) {
	const n = 40
	r := dialDoor(t, fd.g.addrs["web"])
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			body := fmt.Sprintf("n%d", i)
			fmt.Fprintf(&b, "POST /api/demo.echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		} else {
			fmt.Fprintf(&b, "GET /burst/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
	}
	r.send([]byte(b.String()))
	for i := 0; i < n; i++ {
		resp, body := r.httpResponse(10*time.Second, "")
		want := fmt.Sprintf("n%d", i)
		ok := body == want
		if i%2 == 1 {
			want = fmt.Sprintf(`"/burst/%d"`, i)
			ok = strings.Contains(body, want)
		}
		if resp.StatusCode != 200 || !ok {
			t.Fatalf("answer %d: %d %q, want %s", i, resp.StatusCode, body, want)
		}
	}
}

func testHTTPSmuggling(t *testing.T, fd *frontDoor) {
	for _, req := range []string{
		"POST /spy/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /spy/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/spy.smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"POST /spy/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	} {
		r := dialDoor(t, fd.g.addrs["web"])
		r.send([]byte(req))
		if resp, body := r.httpResponse(5*time.Second, ""); resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("%q: %d close=%v %q, want 400 and close", req, resp.StatusCode, resp.Close, body)
		}
		r.closed(3 * time.Second)
	}
	if n := fd.spy.hits("smuggl"); n != 0 {
		t.Fatalf("a smuggling attempt reached the backend (%d hits)", n)
	}
}

// testHTTPEarlyAnswerWhileUploading: a backend that answers a proxied upload before reading
// it. The client gets the answer, saying Connection: close (the gateway closes once the
// upload is in, so nothing may be pipelined behind it), and its upload is read to the end
// rather than cut by a reset (which would lose the answer in the client's receive queue).
func testHTTPEarlyAnswerWhileUploading(t *testing.T, fd *frontDoor) {
	const size = 4 << 20
	r := dialDoor(t, fd.g.addrs["web"])
	sent := make(chan error, 1)
	go func() {
		r.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := r.c.Write([]byte(fmt.Sprintf("POST /spy/early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)))
		chunk := bytes.Repeat([]byte("u"), 64<<10)
		for n := 0; err == nil && n < size; n += len(chunk) {
			_, err = r.c.Write(chunk)
		}
		sent <- err
	}()
	resp, body := r.httpResponse(20*time.Second, "")
	if resp.StatusCode != 200 || body != "early" || !resp.Close {
		t.Fatalf("early answer: %d %q close=%v, want 200 \"early\" with Connection: close", resp.StatusCode, body, resp.Close)
	}
	if err := <-sent; err != nil {
		t.Fatalf("upload cut short after the early answer: %v", err)
	}
	r.closed(5 * time.Second)
}
