package e2e

// MMTP on the front door (mmtp.md "Types", "Errors", "Limits"): PING, stream-id and
// HELLO rules, limits, the in-flight cap and the timeouts. Run by TestFrontDoor. The
// reactor checks timeouts on a one-second wheel, so they fire up to a second late: the
// tests allow that slack and check only that nothing fires early.

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

func testMMTPPing(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	for _, body := range []string{"12345678", "", "ab"} {
		r.send(mmtp.AppendPing(nil, []byte(body)))
		f := r.frame(5 * time.Second)
		if f.Type != mmtp.TypePong || string(f.Body) != body {
			t.Fatalf("PING %q answered by %s %q", body, f.Type, f.Body)
		}
	}
}

func testMMTPDuplicateStream(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(append(doorRequest(7, "demo.sleep", nil, "400"), doorRequest(7, "demo.echo", nil, "dup")...))
	stream, st, code, _ := r.response(5 * time.Second)
	if stream != 7 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("duplicate: stream %d status %d error %q, want 7 400 %s", stream, st, code, codec.ErrBadRequest)
	}
	stream, st, _, body := r.response(5 * time.Second)
	if stream != 7 || st != 200 || body != "400" {
		t.Fatalf("original: stream %d status %d %q, want the sleep answered", stream, st, body)
	}
	// The id is free again once answered.
	r.send(doorRequest(7, "demo.echo", nil, "again"))
	if stream, st, _, body := r.response(5 * time.Second); stream != 7 || st != 200 || body != "again" {
		t.Fatalf("reused id: %d %d %q", stream, st, body)
	}
}

func testMMTPMissingOperation(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 3, codec.Header{{Key: "x-a", Value: "b"}}, []byte("x")))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 3 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("no operation-type: %d %d %q", stream, st, code)
	}
	r.send(mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 5, codec.Header{{Key: "operation-type", Value: ""}}, nil))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 5 || st != 400 || code != codec.ErrBadRequest {
		t.Fatalf("empty operation-type: %d %d %q", stream, st, code)
	}
	// The connection goes on.
	r.send(doorRequest(9, "demo.echo", nil, "ok"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "ok" {
		t.Fatalf("after the 400s: %d %q", st, body)
	}
}

func testMMTPHelloBinding(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mhello"])
	r.send(doorRequest(1, "demo.echo", nil, "early"))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 1 || st != 401 || code != codec.ErrUnauthorized {
		t.Fatalf("REQUEST before HELLO: %d %d %q, want 1 401 unauthorized", stream, st, code)
	}
	r.send(mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 2, codec.Header{{Key: "app-id", Value: "app1"}, {Key: "device-id", Value: "dev1"}}, nil))
	if stream, st, _, body := r.response(5 * time.Second); stream != 2 || st != 200 {
		t.Fatalf("HELLO: %d %d %q", stream, st, body)
	}
	r.send(doorRequest(3, "demo.echo", codec.Header{{Key: "device-id", Value: "dev2"}}, "other"))
	if stream, st, code, _ := r.response(5 * time.Second); stream != 3 || st != 401 || code != codec.ErrUnauthorized {
		t.Fatalf("another device-id: %d %d %q, want 3 401 unauthorized", stream, st, code)
	}
	r.send(doorRequest(4, "demo.echo", codec.Header{{Key: "app-id", Value: "app2"}}, "other"))
	if _, st, _, _ := r.response(5 * time.Second); st != 401 {
		t.Fatalf("another app-id: %d, want 401", st)
	}
	r.send(doorRequest(5, "demo.echo", codec.Header{{Key: "device-id", Value: "dev1"}}, "same"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "same" {
		t.Fatalf("the HELLO's device-id: %d %q", st, body)
	}
	r.send(doorRequest(6, "demo.echo", nil, "bound"))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || body != "bound" {
		t.Fatalf("no device-id after HELLO: %d %q", st, body)
	}
}

func testMMTPFrameTooLarge(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	// At the limit passes; one byte over ends the connection.
	r.send(doorRequest(1, "demo.echo", nil, strings.Repeat("a", 4096)))
	if _, st, _, body := r.response(5 * time.Second); st != 200 || len(body) != 4096 {
		t.Fatalf("body at the limit: %d, %d bytes", st, len(body))
	}
	r.send(doorRequest(3, "demo.echo", nil, strings.Repeat("a", 4097)))
	// Stream 1 was accepted and answered: nothing is left that the gateway will still
	// answer, so last-stream-id is 0 (mmtp.md).
	if last := r.goAway(mmtp.ReasonFrameTooLarge, 5*time.Second); last != 0 {
		t.Fatalf("GOAWAY last-stream-id %d, want 0 (stream 1 already answered)", last)
	}
}

// testMMTPStreamZero: a REQUEST must have a non-zero stream id.
func testMMTPStreamZero(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(doorRequest(0, "demo.echo", nil, "x"))
	if last := r.goAway(mmtp.ReasonProtocolError, 5*time.Second); last != 0 {
		t.Fatalf("GOAWAY last-stream-id %d, want 0 (none accepted)", last)
	}
}

// testMMTPLimitsFromThePrefix: a frame declaring a body over the limit, or a header block
// with too many entries, is refused as soon as that is known, not once it all arrived (the
// listener's frame timeout is the default 30 s, far beyond the wait here).
func testMMTPLimitsFromThePrefix(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	big := doorRequest(1, "demo.echo", nil, strings.Repeat("b", 1<<20))
	r.send(big[:64])
	r.goAway(mmtp.ReasonFrameTooLarge, 3*time.Second)

	var hdr codec.Header
	for i := 0; i < 65; i++ {
		hdr = append(hdr, codec.Field{Key: fmt.Sprintf("x-%d", i), Value: "v"})
	}
	r = dialDoor(t, fd.g.addrs["mobile"])
	r.send(doorRequest(1, "demo.echo", hdr, "x"))
	r.goAway(mmtp.ReasonFrameTooLarge, 3*time.Second)
}

// testMMTPPingBodyTooLong: a PING body over 8 bytes is a protocol error (mmtp.md). The
// encoder cuts PING bodies, so the frame is built as a REQUEST on stream 0 and retyped.
func testMMTPPingBodyTooLong(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	b := mmtp.AppendFrame(nil, mmtp.TypeRequest, 0, 0, nil, []byte("123456789"))
	b[3] = byte(mmtp.TypePing)
	r.send(b)
	r.goAway(mmtp.ReasonProtocolError, 3*time.Second)
}

func testMMTPClientResponse(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mobile"])
	r.send(mmtp.AppendResponse(nil, 1, &codec.Response{Status: 200}))
	r.goAway(mmtp.ReasonProtocolError, 5*time.Second)
}

// testMMTPInFlightCap: 12 requests of 300 ms in one write on a listener with
// max_in_flight 4. With at most 4 in flight, by time T at most 4*floor(T/300ms) can be
// answered, so the k-th answer cannot come before ceil(k/4)*300ms; without the cap all 12
// would come at about 300 ms.
func testMMTPInFlightCap(t *testing.T, fd *frontDoor) {
	const n, limit, sleep = 12, 4, 300 * time.Millisecond
	r := dialDoor(t, fd.g.addrs["mobile"])
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, doorRequest(uint32(2*i+1), "demo.sleep", nil, "300")...)
	}
	start := time.Now()
	r.send(batch)
	seen := map[uint32]bool{}
	for k := 1; k <= n; k++ {
		stream, st, _, body := r.response(20 * time.Second)
		at := time.Since(start)
		if st != 200 || body != "300" || seen[stream] {
			t.Fatalf("answer %d: stream %d status %d %q", k, stream, st, body)
		}
		seen[stream] = true
		if earliest := time.Duration((k+limit-1)/limit) * sleep; at < earliest {
			t.Fatalf("answer %d came after %s, before %s: more than %d were in flight", k, at, earliest, limit)
		}
	}
}

func testMMTPIdleTimeout(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["midle"])
	r.send(doorRequest(1, "demo.echo", nil, "x"))
	if _, st, _, _ := r.response(5 * time.Second); st != 200 {
		t.Fatalf("request: %d", st)
	}
	start := time.Now()
	r.goAway(mmtp.ReasonIdle, 5*time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("idle GOAWAY after %s, before the 1s idle timeout", d)
	}
}

func testMMTPFrameTimeout(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mframe"])
	r.send(mmtp.AppendPing(nil, []byte("p")))
	if f := r.frame(5 * time.Second); f.Type != mmtp.TypePong {
		t.Fatalf("got %s, want PONG", f.Type)
	}
	req := doorRequest(1, "demo.echo", nil, "half a frame")
	r.send(req[:len(req)/2])
	start := time.Now()
	r.goAway(mmtp.ReasonTimeout, 5*time.Second)
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("timeout GOAWAY after %s, before the 1s frame timeout", d)
	}
}

func testMMTPHandshakeTimeout(t *testing.T, fd *frontDoor) {
	silent := dialDoor(t, fd.g.addrs["mhs"])
	// A connection that spoke lives under the (long) idle timeout instead.
	spoke := dialDoor(t, fd.g.addrs["mhs"])
	spoke.send(mmtp.AppendPing(nil, []byte("1")))
	if f := spoke.frame(5 * time.Second); f.Type != mmtp.TypePong {
		t.Fatalf("got %s, want PONG", f.Type)
	}
	start := time.Now()
	silent.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, err := silent.d.ReadFrame(silent.c)
		if err == nil {
			continue // a GOAWAY may precede the close
		}
		if !doorClosed(err) {
			t.Fatalf("silent connection: %v, want it closed by the handshake timeout", err)
		}
		break
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %s, before the 1s handshake timeout", d)
	}
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	spoke.send(mmtp.AppendPing(nil, []byte("2")))
	if f := spoke.frame(5 * time.Second); f.Type != mmtp.TypePong || string(f.Body) != "2" {
		t.Fatalf("connection that spoke: got %s %q, want PONG 2", f.Type, f.Body)
	}
}

// testMMTPSlowAnswerIsNotIdle: a request whose answer takes longer than the idle timeout
// is still answered. A GOAWAY idle before it is allowed (mmtp.md: every accepted request
// in flight is still answered), a close without the answer is not.
func testMMTPSlowAnswerIsNotIdle(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["midle"])
	r.send(doorRequest(1, "demo.sleep", nil, "2500"))
	for {
		f := r.frame(10 * time.Second)
		if f.Type == mmtp.TypeGoAway {
			if last, err := mmtp.LastStreamID(&f); err != nil || last < 1 {
				t.Fatalf("GOAWAY while stream 1 is in flight: last-stream-id %d %v", last, err)
			}
			continue
		}
		if f.Type != mmtp.TypeResponse || f.StreamID != 1 {
			t.Fatalf("got %s on stream %d, want the RESPONSE to 1", f.Type, f.StreamID)
		}
		if st, _ := mmtp.ResponseStatus(&f); st != 200 {
			t.Fatalf("slow answer: status %d %q", st, f.Body)
		}
		return
	}
}

// testMMTPHeldAtCapIsNotAStalledFrame: whole frames held back at the in-flight cap are
// not a frame begun and stalled, so the frame timeout must not end the connection while
// the requests ahead of them take longer than it.
func testMMTPHeldAtCapIsNotAStalledFrame(t *testing.T, fd *frontDoor) {
	r := dialDoor(t, fd.g.addrs["mcapft"])
	var batch []byte
	for i := uint32(1); i <= 4; i++ {
		batch = append(batch, doorRequest(i, "demo.sleep", nil, "2500")...)
	}
	r.send(batch)
	for k := 0; k < 4; k++ {
		f := r.frame(15 * time.Second)
		if f.Type != mmtp.TypeResponse {
			reason, _ := f.Get("reason")
			t.Fatalf("answer %d: got %s %s, want RESPONSE", k, f.Type, reason)
		}
		if st, _ := mmtp.ResponseStatus(&f); st != 200 {
			t.Fatalf("answer %d: status %d %q", k, st, f.Body)
		}
	}
}

// TestFrontDoorDrainAtCap: SIGTERM while a connection is at its in-flight cap with more
// frames held back. GOAWAY's last-stream-id names the highest request taken, exactly those
// requests are answered, and the held-back ones are neither answered nor sent on (the
// client learns from last-stream-id to resend them elsewhere). It needs a gateway of its
// own, since it stops it.
func TestFrontDoorDrainAtCap(t *testing.T) {
	t.Parallel() // overlaps the other front-door gateway; the others here run first
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			_, demoAddr := backend(t, "demo")
			g := serve(t, fmt.Sprintf(`
engine: %s
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp, max_in_flight: 4}
clusters:
  - {name: demo, hosts: [%q], timeout: 10s}
routes:
  - {api: "*", split: {demo: 100}}
`, engine, demoAddr))
			r := dialDoor(t, g.addrs["mobile"])
			var batch []byte
			for i := uint32(1); i <= 12; i++ {
				batch = append(batch, doorRequest(2*i-1, "demo.sleep", nil, "1000")...)
			}
			r.send(batch)
			waitFor(t, 10*time.Second, func() bool { return g.stats(t).InFlight >= 4 })
			g.cmd.Process.Signal(syscall.SIGTERM)
			f := r.frame(5 * time.Second)
			if f.Type != mmtp.TypeGoAway {
				t.Fatalf("got %s, want GOAWAY first", f.Type)
			}
			last, err := mmtp.LastStreamID(&f)
			if reason, _ := f.Get("reason"); err != nil || last != 7 || string(reason) != mmtp.ReasonShutdown {
				t.Fatalf("GOAWAY last-stream-id %d (%v) reason %q, want 7 shutdown", last, err, reason)
			}
			answered := map[uint32]bool{}
			r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				f, err := r.d.ReadFrame(r.c)
				if err != nil {
					if !doorClosed(err) {
						t.Fatalf("after %d answers: %v, want the close", len(answered), err)
					}
					break
				}
				st, _ := mmtp.ResponseStatus(&f)
				if f.Type != mmtp.TypeResponse || st != 200 || f.StreamID > last || answered[f.StreamID] {
					t.Fatalf("after GOAWAY: %s stream %d status %d", f.Type, f.StreamID, st)
				}
				answered[f.StreamID] = true
			}
			if len(answered) != 4 {
				t.Fatalf("answered %v, want streams 1, 3, 5, 7", answered)
			}
			if code := g.wait(15 * time.Second); code != 0 {
				t.Fatalf("mgw exited %d after the drain", code)
			}
		})
	}
}
