package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

func dial(t *testing.T, s *testServer, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func echo(sc *srvConn, f mmtp.Frame) {
	if f.Type == mmtp.TypeRequest {
		op, _ := f.Get("operation-type")
		sc.respond(f.StreamID, 200, string(op)+":"+string(f.Body), "x-op", string(op))
	}
}

func TestHelloSignedAndCall(t *testing.T) {
	secret := []byte("s3cret")
	verified := make(chan error, 4)
	verify := func(f mmtp.Frame, op string) {
		get := func(k string) string { v, _ := f.Get(k); return string(v) }
		sf := mmtp.SignFields{Operation: op, AppID: get("app-id"), DeviceID: get("device-id"),
			Timestamp: get("timestamp"), Nonce: get("nonce"), Body: f.Body}
		if get("nonce") == "" || get("timestamp") == "" || !mmtp.Verify(secret, &sf, get("sign")) {
			verified <- fmt.Errorf("%s: bad signature fields %q", f.Type, f.Header)
			return
		}
		verified <- nil
	}
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		switch f.Type {
		case mmtp.TypeHello:
			verify(f, mmtp.HelloOperation)
			sc.respond(f.StreamID, 200, "")
		case mmtp.TypeRequest:
			op, _ := f.Get("operation-type")
			verify(f, string(op))
			echo(sc, f)
		}
	})
	c := dial(t, s, Options{AppID: "wallet", DeviceID: "dev-1", UserID: "u9", Secret: secret, Hello: true})
	if err := <-verified; err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(ctx5(t), "demo.echo", nil, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-verified; err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "demo.echo:hi" || resp.Header.Value("x-op") != "demo.echo" {
		t.Fatalf("response %+v", resp)
	}
	if _, ok := resp.Header.Get("status"); ok {
		t.Fatal("status should be carried by Status only")
	}
	// Gzip call: the server sees the GZIP flag and the signature covers compressed bytes.
	if _, err := c.CallGzip(ctx5(t), "demo.echo", nil, []byte("zipped")); err != nil {
		t.Fatal(err)
	}
	if err := <-verified; err != nil {
		t.Fatal(err)
	}
}

func TestHelloRefused(t *testing.T) {
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		r := codec.ErrorResponse(401, codec.ErrUnauthorized, "bad sign")
		sc.send(mmtp.AppendResponse(nil, f.StreamID, r))
	})
	_, err := Dial(ctx5(t), s.addr(), Options{AppID: "a", DeviceID: "d", Secret: []byte("x"), Hello: true})
	var he *HelloError
	if !errors.As(err, &he) || he.Status != 401 || he.Code != codec.ErrUnauthorized || he.Reason != "bad sign" {
		t.Fatalf("err = %v", err)
	}
}

func TestOutOfOrderResponses(t *testing.T) {
	// The server holds requests until it has three, then answers them last first.
	var mu sync.Mutex
	var held []mmtp.Frame
	s := newTestServer(t, 0, autoHello(func(sc *srvConn, f mmtp.Frame) {
		mu.Lock()
		held = append(held, f)
		if len(held) < 3 {
			mu.Unlock()
			return
		}
		fs := held
		held = nil
		mu.Unlock()
		for i := len(fs) - 1; i >= 0; i-- {
			echo(sc, fs[i])
		}
	}))
	c := dial(t, s, Options{Hello: true})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strconv.Itoa(i)
			resp, err := c.Call(ctx5(t), "op"+body, nil, []byte(body))
			if err == nil && string(resp.Body) != "op"+body+":"+body {
				err = fmt.Errorf("call %d got %q", i, resp.Body)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestManyConcurrentCalls(t *testing.T) {
	s := newTestServer(t, 0, autoHello(echo))
	c := dial(t, s, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strconv.Itoa(i)
			resp, err := c.Call(ctx5(t), "x", nil, []byte(body))
			if err == nil && string(resp.Body) != "x:"+body {
				err = fmt.Errorf("call %d got %q", i, resp.Body)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCallTimeoutThenLateAnswerDropped(t *testing.T) {
	late := make(chan mmtp.Frame, 1)
	s := newTestServer(t, 0, autoHello(func(sc *srvConn, f mmtp.Frame) {
		if op, _ := f.Get("operation-type"); string(op) == "slow" {
			late <- f
			return
		}
		echo(sc, f)
	}))
	c := dial(t, s, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "slow", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// The late answer arrives and is dropped; the connection keeps working.
	f := <-late
	sc := <-s.conns
	sc.respond(f.StreamID, 200, "too late")
	resp, err := c.Call(ctx5(t), "fast", nil, []byte("1"))
	if err != nil || string(resp.Body) != "fast:1" {
		t.Fatalf("resp %+v err %v", resp, err)
	}
}

func TestOptionsTimeoutBoundsCall(t *testing.T) {
	s := newTestServer(t, 0, nil) // never answers
	c := dial(t, s, Options{Timeout: 50 * time.Millisecond})
	if _, err := c.Call(context.Background(), "x", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestPushAcked(t *testing.T) {
	s := newTestServer(t, 0, autoHello(nil))
	type push struct {
		topic string
		hdr   codec.Header
		body  string
	}
	pushes := make(chan push, 2)
	c := dial(t, s, Options{Hello: true, OnPush: func(topic string, hdr codec.Header, body []byte) {
		pushes <- push{topic, hdr, string(body)}
	}})
	_ = c
	sc := <-s.conns
	<-sc.got // the HELLO
	sc.send(mmtp.AppendPush(nil, 41, "orders", codec.Header{{Key: "k", Value: "v"}}, []byte("plain"), false))
	sc.send(mmtp.AppendPush(nil, 42, "orders", nil, mmtp.Compress(nil, []byte("unzipped")), true))
	for i, want := range []string{"plain", "unzipped"} {
		p := <-pushes
		if p.topic != "orders" || p.body != want {
			t.Fatalf("push %d: %+v", i, p)
		}
		ack := <-sc.got
		if ack.Type != mmtp.TypePushAck || ack.StreamID != uint32(41+i) {
			t.Fatalf("ack %d: %v stream %d", i, ack.Type, ack.StreamID)
		}
	}
}

func TestGoAway(t *testing.T) {
	var mu sync.Mutex
	var held []mmtp.Frame
	ready := make(chan struct{})
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		mu.Lock()
		held = append(held, f)
		if len(held) == 3 {
			close(ready)
		}
		mu.Unlock()
	})
	goaways := make(chan string, 2)
	c := dial(t, s, Options{OnGoAway: func(last uint32, reason string) {
		goaways <- fmt.Sprint(last, reason)
	}})
	type out struct {
		body string
		err  error
	}
	res := make([]chan out, 3)
	for i := range res {
		res[i] = make(chan out, 1)
		go func() {
			r, err := c.Call(ctx5(t), "op", nil, []byte(strconv.Itoa(i)))
			o := out{err: err}
			if r != nil {
				o.body = string(r.Body)
			}
			res[i] <- o
		}()
	}
	<-ready
	sc := <-s.conns
	// Accept the two lowest stream ids; the highest is refused.
	mu.Lock()
	fs := held
	mu.Unlock()
	ids := []uint32{fs[0].StreamID, fs[1].StreamID, fs[2].StreamID}
	maxID := max(ids[0], ids[1], ids[2])
	sc.send(mmtp.AppendGoAway(nil, maxID-1, mmtp.ReasonShutdown))
	<-c.GoAway()
	if got := <-goaways; got != fmt.Sprint(maxID-1, mmtp.ReasonShutdown) {
		t.Fatalf("OnGoAway got %q", got)
	}
	// New calls are refused at once, retryably.
	_, err := c.Call(ctx5(t), "new", nil, nil)
	var ge *GoAwayError
	if !errors.As(err, &ge) || !ge.Retryable() {
		t.Fatalf("new call after GOAWAY: %v", err)
	}
	for _, f := range fs {
		if f.StreamID != maxID {
			sc.respond(f.StreamID, 200, "ok"+string(f.Body))
		}
	}
	sc.Close()
	for i := range res {
		o := <-res[i]
		id := ids[0]
		for _, f := range fs {
			if string(f.Body) == strconv.Itoa(i) {
				id = f.StreamID
			}
		}
		if id == maxID {
			if !errors.As(o.err, &ge) || ge.LastStreamID != maxID-1 || ge.Reason != mmtp.ReasonShutdown {
				t.Fatalf("refused call %d: %v", i, o.err)
			}
		} else if o.err != nil || o.body != "ok"+strconv.Itoa(i) {
			t.Fatalf("accepted call %d: %+v", i, o)
		}
	}
	<-c.Done()
	var ce *ConnError
	if !errors.As(c.Err(), &ce) {
		t.Fatalf("Err after server close = %v", c.Err())
	}
}

func TestPingBothWays(t *testing.T) {
	s := newTestServer(t, 0, autoHello(nil))
	c := dial(t, s, Options{})
	rtt, err := c.Ping(ctx5(t))
	if err != nil || rtt <= 0 {
		t.Fatalf("rtt %v err %v", rtt, err)
	}
	sc := <-s.conns
	<-sc.got // our PING
	sc.send(mmtp.AppendPing(nil, []byte("abc")))
	pong := <-sc.got
	if pong.Type != mmtp.TypePong || string(pong.Body) != "abc" {
		t.Fatalf("got %v %q", pong.Type, pong.Body)
	}
}

func TestProxyHeaderTraceAndLocalAddr(t *testing.T) {
	hdr := []byte("PROXY TCP4 10.1.2.3 10.0.0.1 5555 9000\r\n")
	s := newTestServer(t, len(hdr), autoHello(echo))
	var mu sync.Mutex
	var trace []string
	c := dial(t, s, Options{ProxyHeader: hdr, LocalAddr: "127.0.0.1:0", Trace: func(dir string, f *mmtp.Frame) {
		mu.Lock()
		trace = append(trace, dir+" "+f.Type.String())
		mu.Unlock()
	}})
	if _, err := c.Call(ctx5(t), "x", nil, nil); err != nil {
		t.Fatal(err)
	}
	sc := <-s.conns
	if !bytes.Equal(sc.prefix, hdr) {
		t.Fatalf("server saw prefix %q", sc.prefix)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(trace) != "[send REQUEST recv RESPONSE]" {
		t.Fatalf("trace %v", trace)
	}
}

func TestProtocolErrorFromServerFailsCalls(t *testing.T) {
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		sc.send([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	})
	c := dial(t, s, Options{})
	_, err := c.Call(ctx5(t), "x", nil, nil)
	var ce *ConnError
	var pe *mmtp.ProtocolError
	if !errors.As(err, &ce) || ce.Op != "protocol" || !errors.As(err, &pe) || pe.Offset != 0 {
		t.Fatalf("err = %v", err)
	}
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	s := newTestServer(t, 0, nil)
	c := dial(t, s, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx5(t), "x", nil, nil)
		errc <- err
	}()
	sc := <-s.conns
	<-sc.got
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Call(ctx5(t), "x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	c.Close() // idempotent
}

func TestDialFailures(t *testing.T) {
	// HELLO never answered: Dial gives up after Options.Timeout and leaves nothing running.
	s := newTestServer(t, 0, nil)
	start := time.Now()
	_, err := Dial(context.Background(), s.addr(), Options{Hello: true, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("Dial did not honour Timeout")
	}
	// Nothing listening.
	ln := s.ln.Addr().String()
	s.ln.Close()
	if _, err := Dial(ctx5(t), ln, Options{}); err == nil {
		t.Fatal("dial to a closed listener succeeded")
	}
	if _, err := Dial(ctx5(t), ln, Options{LocalAddr: "not an address"}); err == nil {
		t.Fatal("bad LocalAddr accepted")
	}
}

func TestCloseWhileCalling(t *testing.T) {
	s := newTestServer(t, 0, autoHello(echo))
	c := dial(t, s, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := c.Call(ctx5(t), "x", nil, nil)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					}
					return
				}
				if i == 20 && g == 0 {
					go c.Close()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("call failed with %v, want ErrClosed", err)
	}
	if _, err := c.Ping(ctx5(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}

// TestWriteFailureKeepsAnswersComing: when a call's frame cannot be written, that call
// fails retryably (never sent), but a call sent before it still gets its answer: the
// gateway answers what it accepted before it closes.
func TestWriteFailureKeepsAnswersComing(t *testing.T) {
	release := make(chan struct{})
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		if f.Type == mmtp.TypeRequest {
			<-release // answered only after the client's next write failed
			sc.respond(f.StreamID, 200, "first")
		}
	})
	c := dial(t, s, Options{})
	type out struct {
		resp *codec.Response
		err  error
	}
	first := make(chan out, 1)
	go func() {
		r, err := c.Call(ctx5(t), "op", nil, nil)
		first <- out{r, err}
	}()
	sc := <-s.conns
	<-sc.got
	// The next write fails: the client's sending half is shut.
	c.conn.(*net.TCPConn).CloseWrite()
	_, err := c.Call(ctx5(t), "op", nil, nil)
	var ce *ConnError
	if !errors.As(err, &ce) || !ce.Retryable() {
		t.Fatalf("call whose write failed: %v, want a retryable ConnError", err)
	}
	close(release)
	o := <-first
	if o.err != nil || string(o.resp.Body) != "first" {
		t.Fatalf("call sent before the failed write: %+v %v, want its answer", o.resp, o.err)
	}
}
