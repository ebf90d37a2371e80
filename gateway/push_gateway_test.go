package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// These tests speak MMTP from the spec (mmtp.md "Push delivery") over loopback to a real
// gateway, with a raw client built on codec/mmtp's encoder and parser only.

const pushTestConfig = `
engine: %s
admin: {listen: "127.0.0.1:0"}
listeners:
  - {name: m, listen: "127.0.0.1:0", protocol: mmtp}
%s
`

func runPushGateway(t *testing.T, extra string) *Gateway {
	t.Helper()
	return runPushGatewayOn(t, "epoll", extra)
}

func runPushGatewayOn(t *testing.T, engine, extra string) *Gateway {
	t.Helper()
	return runGateway(t, fmt.Sprintf(pushTestConfig, engine, extra), Options{})
}

type pushFrame struct {
	stream uint32
	topic  string
	seq    uint64
	epoch  string
	msgID  string
	exp    string
	body   string
}

// rawConn is a device speaking MMTP from the spec.
type rawConn struct {
	t   *testing.T
	c   net.Conn
	dec *mmtp.Decoder
}

func dialPush(t *testing.T, g *Gateway) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", g.Addr("m").String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, dec: mmtp.NewDecoder(nil)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) read() mmtp.Frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := r.dec.ReadFrame(r.c)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	if err := mmtp.CheckServerFrame(&f); err != nil {
		r.t.Fatalf("gateway sent an invalid frame: %v", err)
	}
	return f
}

// hello sends HELLO with app a, device d and extra headers; it returns the 200's headers.
// Nothing may come before the RESPONSE.
func (r *rawConn) hello(app, dev string, extra ...string) map[string]string {
	r.t.Helper()
	hdr := codec.Header{{Key: "app-id", Value: app}, {Key: "device-id", Value: dev}}
	for i := 0; i+1 < len(extra); i += 2 {
		hdr = append(hdr, codec.Field{Key: extra[i], Value: extra[i+1]})
	}
	r.write(mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 1, hdr, nil))
	f := r.read()
	if f.Type != mmtp.TypeResponse || f.StreamID != 1 {
		r.t.Fatalf("first frame after HELLO is %v on stream %d, want its RESPONSE", f.Type, f.StreamID)
	}
	h := headers(&f)
	if h["status"] != "200" {
		r.t.Fatalf("HELLO answered %v: %s", h, f.Body)
	}
	return h
}

func headers(f *mmtp.Frame) map[string]string {
	h := map[string]string{}
	f.Each(func(k, v []byte) bool { h[string(k)] = string(v); return true })
	return h
}

// pushesUntilPong sends a PING and returns the PUSH frames that arrive before its PONG:
// everything the gateway had written to this connection when the PING was read.
func (r *rawConn) pushesUntilPong() []pushFrame {
	r.t.Helper()
	r.write(mmtp.AppendPing(nil, []byte("barrier")))
	var out []pushFrame
	for {
		f := r.read()
		switch f.Type {
		case mmtp.TypePong:
			return out
		case mmtp.TypePush:
			out = append(out, toPush(r.t, &f))
		default:
			r.t.Fatalf("unexpected %v", f.Type)
		}
	}
}

// nextPush waits for one PUSH.
func (r *rawConn) nextPush() pushFrame {
	r.t.Helper()
	f := r.read()
	if f.Type != mmtp.TypePush {
		r.t.Fatalf("got %v, want PUSH", f.Type)
	}
	return toPush(r.t, &f)
}

func toPush(t *testing.T, f *mmtp.Frame) pushFrame {
	t.Helper()
	h := headers(f)
	seq, err := strconv.ParseUint(h["seq"], 10, 64)
	if err != nil || h["topic"] == "" || h["epoch"] == "" || f.StreamID == 0 {
		t.Fatalf("PUSH lacks a required header or has stream 0: %v stream %d", h, f.StreamID)
	}
	return pushFrame{stream: f.StreamID, topic: h["topic"], seq: seq, epoch: h["epoch"], msgID: h["message-id"], exp: h["expires"], body: string(f.Body)}
}

func (r *rawConn) ack(stream uint32) { r.write(mmtp.AppendPushAck(nil, stream)) }

func pushSeqs(ps []pushFrame) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.FormatUint(p.seq, 10)
	}
	return strings.Join(s, ",")
}

// publish POSTs /v1/push and returns the status and decoded answer.
func publish(t *testing.T, g *Gateway, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.AdminAddr().String()+"/v1/push", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func mustPublish(t *testing.T, g *Gateway, dev, topic, body string) (uint64, string) {
	t.Helper()
	st, out := publish(t, g, fmt.Sprintf(`{"app":"shop","device":%q,"topic":%q,"body":%q}`, dev, topic, body))
	if st != http.StatusAccepted {
		t.Fatalf("publish: %d %v", st, out)
	}
	seq, _ := out["seq"].(float64)
	ep, _ := out["epoch"].(string)
	return uint64(seq), ep
}

// TestPushDoneWhen is the "done when": HELLO sees push-epoch and push-seq 0;
// three pushes arrive in order with seq 1-3; acknowledge two, reconnect with push-seq 2
// and receive 3, then a fourth published meanwhile.
func TestPushDoneWhen(t *testing.T) {
	for _, engine := range []string{"epoll", "rwloop"} {
		t.Run(engine, func(t *testing.T) { testPushDoneWhen(t, engine) })
	}
}

func testPushDoneWhen(t *testing.T, engine string) {
	g := runPushGatewayOn(t, engine, "")
	a := dialPush(t, g)
	h := a.hello("shop", "phone-1")
	epoch := h["push-epoch"]
	if epoch == "" || h["push-seq"] != "0" || h["push-reset"] != "" {
		t.Fatalf("HELLO 200 headers %v: want push-epoch, push-seq 0, no push-reset", h)
	}
	for i := 1; i <= 3; i++ {
		seq, ep := mustPublish(t, g, "phone-1", "order.paid", fmt.Sprint("body-", i))
		if seq != uint64(i) || ep != epoch {
			t.Fatalf("publish %d answered seq %d epoch %q", i, seq, ep)
		}
	}
	var got []pushFrame
	for range 3 {
		got = append(got, a.nextPush())
	}
	if pushSeqs(got) != "1,2,3" || got[2].body != "body-3" || got[0].topic != "order.paid" || got[1].epoch != epoch {
		t.Fatalf("pushes %+v", got)
	}
	if got[0].exp == "" {
		t.Error("PUSH lacks expires though the default TTL applies")
	}
	a.ack(got[0].stream)
	a.ack(got[1].stream)
	a.pushesUntilPong() // the acks are read before the connection closes
	a.c.Close()

	b := dialPush(t, g)
	h = b.hello("shop", "phone-1", "push-epoch", epoch, "push-seq", "2")
	if h["push-epoch"] != epoch || h["push-seq"] != "3" || h["push-reset"] != "" {
		t.Fatalf("resume at 2: HELLO 200 headers %v", h)
	}
	if p := b.nextPush(); p.seq != 3 || p.body != "body-3" {
		t.Fatalf("resume sent %+v, want seq 3", p)
	}
	mustPublish(t, g, "phone-1", "order.shipped", "body-4")
	if p := b.nextPush(); p.seq != 4 || p.topic != "order.shipped" {
		t.Fatalf("after resume got %+v, want seq 4", p)
	}
	var m bytes.Buffer
	g.set.WritePrometheus(&m)
	for _, want := range []string{"mgw_push_published_total 4", "mgw_push_acked_total 2", "mgw_push_delivered_total 5",
		"mgw_push_redelivered_total 1", "mgw_push_devices 1", "mgw_push_log_bytes 12"} {
		if !strings.Contains(m.String(), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if st := g.Stats().Push; st == nil || st.Connected != 1 || st.Pending != 2 {
		t.Errorf("stats push block %+v", st)
	}
}

// fullWindow publishes 40 messages to device d and says HELLO as it: the connection and
// the first window's 16 pushes, in seq order.
func fullWindow(t *testing.T, g *Gateway) (*rawConn, []pushFrame) {
	t.Helper()
	for range 40 {
		mustPublish(t, g, "d", "t", "x")
	}
	c := dialPush(t, g)
	c.hello("shop", "d")
	first := c.pushesUntilPong()
	if len(first) != 16 || pushSeqs(first) != "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16" {
		t.Fatalf("first window: %s", pushSeqs(first))
	}
	return c, first
}

// TestPushWindow: never more than 16 unacknowledged on a connection; acks let more out,
// in seq order.
func TestPushWindow(t *testing.T) {
	g := runPushGateway(t, "")
	c, first := fullWindow(t, g)
	streams := map[uint32]bool{}
	for _, p := range first {
		if streams[p.stream] {
			t.Fatalf("stream id %d used twice among unacknowledged pushes", p.stream)
		}
		streams[p.stream] = true
	}
	// A publish while the window is full waits in the log.
	mustPublish(t, g, "d", "t", "x")
	if more := c.pushesUntilPong(); len(more) != 0 {
		t.Fatalf("sent %s past a full window", pushSeqs(more))
	}
	for _, p := range first[:5] {
		c.ack(p.stream)
	}
	if more := c.pushesUntilPong(); pushSeqs(more) != "17,18,19,20,21" {
		t.Fatalf("after 5 acks: %s", pushSeqs(more))
	}
}

// TestPushWindowAcrossHellos: a second HELLO on a connection with a full window does not
// open a second window: at most 16 pushes stay unacknowledged on the connection, and acks
// of the first HELLO's pushes still free places.
func TestPushWindowAcrossHellos(t *testing.T) {
	g := runPushGateway(t, "")
	c, first := fullWindow(t, g)
	c.hello("shop", "d")
	if more := c.pushesUntilPong(); len(more) != 0 {
		t.Fatalf("second HELLO sent %s with 16 unacknowledged on the connection", pushSeqs(more))
	}
	for _, p := range first[:5] {
		c.ack(p.stream)
	}
	more := c.pushesUntilPong()
	if len(more) != 5 {
		t.Fatalf("after 5 acks of the first HELLO's pushes: %s, want 5 more", pushSeqs(more))
	}
	for _, p := range more {
		for _, f := range first[5:] {
			if p.stream == f.stream {
				t.Fatalf("stream %d reused while still unacknowledged", p.stream)
			}
		}
	}
}

// TestPushForeignEpochResets: a HELLO naming an epoch this gateway never issued gets
// push-reset: 1 and what the log holds.
func TestPushForeignEpochResets(t *testing.T) {
	g := runPushGateway(t, "")
	_, ep := mustPublish(t, g, "d", "t", "x")
	c := dialPush(t, g)
	h := c.hello("shop", "d", "push-epoch", "an-epoch-of-another-run", "push-seq", "7")
	if h["push-reset"] != "1" || h["push-epoch"] != ep || h["push-seq"] != "1" {
		t.Fatalf("HELLO 200 headers %v", h)
	}
	if p := c.nextPush(); p.seq != 1 {
		t.Fatalf("got %+v", p)
	}
	// A bad push-seq is answered 400, naming it.
	d := dialPush(t, g)
	d.write(mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 1, codec.Header{{Key: "device-id", Value: "d"}, {Key: "push-seq", Value: "x1"}}, nil))
	f := d.read()
	if h := headers(&f); h["status"] != "400" || !strings.Contains(string(f.Body), "push-seq") {
		t.Fatalf("bad push-seq answered %v %s", h, f.Body)
	}
}

// TestPushExpiredNotDelivered: a message past its ttl is not sent, and dropping it does
// not change the epoch.
func TestPushExpiredNotDelivered(t *testing.T) {
	g := runPushGateway(t, "")
	st, out := publish(t, g, `{"device":"d","topic":"t","body":"old","ttl":"50ms","message_id":"m-1"}`)
	if st != http.StatusAccepted {
		t.Fatalf("%d %v", st, out)
	}
	ep := out["epoch"].(string)
	time.Sleep(150 * time.Millisecond)
	c := dialPush(t, g)
	h := c.hello("", "d", "push-epoch", ep, "push-seq", "0")
	if h["push-reset"] != "" || h["push-epoch"] != ep {
		t.Fatalf("expiry changed history: %v", h)
	}
	if got := c.pushesUntilPong(); len(got) != 0 {
		t.Fatalf("expired message sent: %+v", got)
	}
	st, out = publish(t, g, `{"device":"d","topic":"t","body":"new","message_id":"m-2"}`)
	if st != http.StatusAccepted || out["epoch"] != ep {
		t.Fatalf("%d %v", st, out)
	}
	if p := c.nextPush(); p.seq != 2 || p.body != "new" || p.msgID != "m-2" {
		t.Fatalf("got %+v", p)
	}
}

// TestPushEvictionChangesEpoch: the 65th message evicts the first, the epoch changes, and a
// client resuming in the old epoch gets push-reset: 1 and what the log still holds.
func TestPushEvictionChangesEpoch(t *testing.T) {
	g := runPushGateway(t, "")
	_, ep1 := mustPublish(t, g, "d", "t", "1")
	var ep2 string
	for i := 2; i <= 65; i++ {
		_, ep2 = mustPublish(t, g, "d", "t", fmt.Sprint(i))
	}
	if ep2 == ep1 {
		t.Fatalf("epoch %q kept after an eviction", ep1)
	}
	c := dialPush(t, g)
	h := c.hello("shop", "d", "push-epoch", ep1, "push-seq", "0")
	if h["push-reset"] != "1" || h["push-epoch"] != ep2 || h["push-seq"] != "65" {
		t.Fatalf("HELLO 200 headers %v", h)
	}
	got := c.pushesUntilPong()
	if len(got) != 16 || got[0].seq != 2 || got[0].body != "2" || got[0].epoch != ep2 {
		t.Fatalf("after the reset: %s", pushSeqs(got))
	}
	// The new epoch alone does not vouch for the log: message 1 was evicted, so a client
	// in the current epoch at seq 0 (it learnt the epoch from a HELLO's answer, message 1
	// still unprocessed) missed it, and is told so. At seq 1, every later message is in
	// the log: no reset.
	c2 := dialPush(t, g)
	if h := c2.hello("shop", "d", "push-epoch", ep2, "push-seq", "0"); h["push-reset"] != "1" || h["push-epoch"] != ep2 {
		t.Errorf("current epoch at seq 0 after message 1 was evicted: HELLO 200 headers %v, want push-reset", h)
	}
	c3 := dialPush(t, g)
	if h := c3.hello("shop", "d", "push-epoch", ep2, "push-seq", "1"); h["push-reset"] != "" {
		t.Errorf("current epoch at seq 1, every later message in the log: HELLO 200 headers %v, want no reset", h)
	}
	if got := c3.pushesUntilPong(); len(got) == 0 || got[0].seq != 2 {
		t.Errorf("resumed at seq 1: %s, want from seq 2", pushSeqs(got))
	}
}

// TestPushAckUnknownStream: a PUSH_ACK for a stream with no unacknowledged push (stream 0
// included) is ignored; the connection stays and pushes go on.
func TestPushAckUnknownStream(t *testing.T) {
	g := runPushGateway(t, "")
	c := dialPush(t, g)
	c.hello("shop", "d")
	c.ack(4242)
	c.ack(0) // names no push either: ignored, not a protocol error
	c.pushesUntilPong()
	mustPublish(t, g, "d", "t", "x")
	p := c.nextPush()
	c.ack(p.stream)
	c.ack(p.stream) // twice: the second is unknown by now
	if got := c.pushesUntilPong(); len(got) != 0 {
		t.Fatalf("unexpected %+v", got)
	}
	if st := g.Stats().Push; st.Acked != 1 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPushLatestHelloWins: the device's newest connection gets its pushes; the older one
// gets none, and unacknowledged pushes of a closed connection go out on the next one.
func TestPushLatestHelloWins(t *testing.T) {
	g := runPushGateway(t, "")
	old := dialPush(t, g)
	old.hello("shop", "d")
	mustPublish(t, g, "d", "t", "1")
	if p := old.nextPush(); p.seq != 1 {
		t.Fatalf("got %+v", p)
	}
	cur := dialPush(t, g)
	cur.hello("shop", "d")
	if p := cur.nextPush(); p.seq != 1 {
		t.Fatalf("unacknowledged push not sent again: %+v", p)
	}
	mustPublish(t, g, "d", "t", "2")
	if p := cur.nextPush(); p.seq != 2 {
		t.Fatalf("got %+v", p)
	}
	if got := old.pushesUntilPong(); len(got) != 0 {
		t.Fatalf("the replaced connection got %s", pushSeqs(got))
	}
	// Another app's device of the same id is another device.
	mustPublishApp(t, g, "other-app", "d")
	if got := cur.pushesUntilPong(); len(got) != 0 {
		t.Fatalf("another app's push arrived: %+v", got)
	}
	if st := g.Stats().Push; st.Connected != 1 || st.Redeliver != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A HELLO without device-id still learns the headers, and binds nothing.
	n := dialPush(t, g)
	if h := n.hello("shop", ""); h["push-epoch"] == "" || h["push-seq"] != "0" {
		t.Fatalf("HELLO without device-id: %v", h)
	}
}

func mustPublishApp(t *testing.T, g *Gateway, app, dev string) {
	t.Helper()
	if st, out := publish(t, g, fmt.Sprintf(`{"app":%q,"device":%q,"topic":"t","body":"x"}`, app, dev)); st != http.StatusAccepted {
		t.Fatalf("%d %v", st, out)
	}
}

// TestPushBatchAndBudget: the batch form answers each device's seq; a full budget is
// refused with 503 naming push.budget.
func TestPushBatchAndBudget(t *testing.T) {
	g := runPushGateway(t, "push: {max_bytes: 8B, budget: 20B}")
	c := dialPush(t, g)
	c.hello("shop", "b")
	st, out := publish(t, g, `{"app":"shop","devices":["a","b","c"],"topic":"t","body_base64":"aGVsbG8="}`)
	if st != http.StatusAccepted {
		t.Fatalf("%d %v", st, out)
	}
	res := out["results"].([]any)
	if len(res) != 3 || res[1].(map[string]any)["device"] != "b" || res[1].(map[string]any)["seq"] != 1.0 {
		t.Fatalf("results %v", res)
	}
	if p := c.nextPush(); p.body != "hello" {
		t.Fatalf("got %+v", p)
	}
	// 15 of 20 bytes are used: the next 8 do not fit.
	st, out = publish(t, g, `{"app":"shop","device":"z","topic":"t","body":"12345678"}`)
	if st != http.StatusServiceUnavailable || !strings.Contains(out["error"].(string), "push.budget") {
		t.Fatalf("over budget: %d %v", st, out)
	}
}

// TestPushAdminBadInput: every bad request is 400 naming its field.
func TestPushAdminBadInput(t *testing.T) {
	g := runPushGateway(t, "push: {max_bytes: 16B}")
	for body, field := range map[string]string{
		`{"device":"d","topic":"t","body":"x","extra":1}`:                        `"extra"`,
		`{"device":"","topic":"t","body":"x"}`:                                   "device: must not be empty",
		`{"topic":"t","body":"x"}`:                                               "device: must not be empty",
		`{"device":"d","topic":"","body":"x"}`:                                   "topic: must not be empty",
		`{"device":"d","topic":"t","body":"x","body_base64":"eA=="}`:             "body_base64: give body or body_base64",
		`{"device":"d","topic":"t","body_base64":"!!"}`:                          "body_base64: not standard base64",
		`{"device":"d","topic":"t","body":"x","ttl":"soon"}`:                     "ttl:",
		`{"device":"d","topic":"t","body":"x","ttl":60}`:                         "ttl: a number where a string belongs",
		`{"device":"d","topic":"t","body":"x","ttl":"-1s"}`:                      "ttl:",
		`{"device":"d","topic":"t","body":"12345678901234567"}`:                  "body: 17 bytes is over push.max_bytes",
		`{"devices":[],"topic":"t"}`:                                             "devices: must not be empty",
		`{"devices":["a",""],"topic":"t"}`:                                       "devices[1]: must not be empty",
		`{"devices":["a","a"],"topic":"t"}`:                                      "devices[1]:",
		`{"device":"d","devices":["a"],"topic":"t"}`:                             "devices: give device or devices",
		`{"device":"d","topic":"t"} {}`:                                          "more than one JSON value",
		`{"device":"d","topic":"t","body":"` + strings.Repeat("x", 2<<20) + `"}`: "request body: over",
	} {
		st, out := publish(t, g, body)
		msg, _ := out["error"].(string)
		if st != http.StatusBadRequest || !strings.Contains(msg, field) {
			t.Errorf("%.80s: %d %q, want 400 naming %s", body, st, msg, field)
		}
	}
	if st := g.Stats().Push; st.Published != 0 || st.Devices != 0 {
		t.Fatalf("a refused publish reached the store: %+v", st)
	}
}

// TestPushAdminNeedsToken: with admin tokens configured, a publish without one is 401
// and with one is 202.
func TestPushAdminNeedsToken(t *testing.T) {
	const tok = "push-test-token-0123456789abcdef"
	g := runGateway(t, `
admin:
  listen: "127.0.0.1:0"
  tokens: [{name: ops, env: PUSH_TEST_TOKEN}]
listeners:
  - {name: m, listen: "127.0.0.1:0", protocol: mmtp}
`, Options{Getenv: func(k string) string {
		if k == "PUSH_TEST_TOKEN" {
			return tok
		}
		return ""
	}})
	body := `{"device":"d","topic":"t","body":"x"}`
	if st, out := publish(t, g, body); st != http.StatusUnauthorized {
		t.Fatalf("without a token: %d %v", st, out)
	}
	if st, out := publish(t, g, body, "Authorization", "Bearer "+tok); st != http.StatusAccepted || out["seq"] != 1.0 {
		t.Fatalf("with the token: %d %v", st, out)
	}
}

// TestPushToResetConnection publishes to devices whose connection the client has just
// reset: the gateway's write fails and the connection closes on the publishing goroutine
// itself (netpoll runs OnClose there), inside the send. The publish must still answer,
// and the device must come unbound.
func TestPushToResetConnection(t *testing.T) {
	g := runPushGateway(t, "")
	for i := range 50 {
		c := dialPush(t, g)
		c.hello("shop", "d")
		c.c.(*net.TCPConn).SetLinger(0) // close sends RST
		c.c.Close()
		done := make(chan struct{})
		body := `{"app":"shop","device":"d","topic":"t","body":"` + strings.Repeat("x", 60000) + `"}`
		go func() { // not publish: t.Fatal belongs to the test's goroutine
			defer close(done)
			resp, err := http.Post("http://"+g.AdminAddr().String()+"/v1/push", "application/json", strings.NewReader(body))
			if err == nil {
				resp.Body.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("publish %d to a reset connection never answered", i)
		}
	}
	waitConnected := time.Now().Add(10 * time.Second)
	for g.Stats().Push.Connected != 0 {
		if time.Now().After(waitConnected) {
			t.Fatalf("%d devices still bound to closed connections", g.Stats().Push.Connected)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPushBodyNotInAuditLog: an accepted publish is not an info audit line, and its body
// appears in no log line.
func TestPushBodyNotInAuditLog(t *testing.T) {
	var logs lockedBuffer
	g := runGateway(t, fmt.Sprintf(pushTestConfig, "epoll", ""), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	const marker = "secret-order-body-5f1c"
	if st, out := publish(t, g, `{"device":"d","topic":"t","body":"`+marker+`"}`); st != http.StatusAccepted {
		t.Fatalf("%d %v", st, out)
	}
	if s := logs.String(); strings.Contains(s, marker) || strings.Contains(s, "admin change") {
		t.Fatalf("publish logged at info:\n%s", s)
	}
	var m bytes.Buffer
	g.set.WritePrometheus(&m)
	if !strings.Contains(m.String(), `mgw_admin_changes_total{endpoint="/v1/push"} 1`) {
		t.Error("publish not counted in mgw_admin_changes_total")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPushWithAuth: with auth on, only a HELLO whose signature holds binds the device;
// push-epoch and push-seq ride along outside the signature (mmtp.md signs six fields).
func TestPushWithAuth(t *testing.T) {
	const secret = "push-auth-secret-0123456789"
	g := runGateway(t, `
admin: {listen: "127.0.0.1:0"}
listeners:
  - {name: m, listen: "127.0.0.1:0", protocol: mmtp, filters: [auth]}
apps:
  - {id: shop, secret: `+secret+`}
`, Options{})
	signedHello := func(secret string, extra ...codec.Field) []byte {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		nonce := fmt.Sprint("n-", time.Now().UnixNano())
		sign := mmtp.Sign([]byte(secret), &mmtp.SignFields{Operation: mmtp.HelloOperation, AppID: "shop",
			DeviceID: "d", Timestamp: ts, Nonce: nonce})
		hdr := codec.Header{{Key: "app-id", Value: "shop"}, {Key: "device-id", Value: "d"},
			{Key: "timestamp", Value: ts}, {Key: "nonce", Value: nonce}, {Key: "sign", Value: sign}}
		return mmtp.AppendFrame(nil, mmtp.TypeHello, 0, 1, append(hdr, extra...), nil)
	}
	mustPublish(t, g, "d", "t", "x")

	bad := dialPush(t, g)
	bad.write(signedHello("wrong-secret-0123456789"))
	f := bad.read()
	if h := headers(&f); h["status"] != "401" || h["push-epoch"] != "" {
		t.Fatalf("forged HELLO answered %v", h)
	}
	if got := bad.pushesUntilPong(); len(got) != 0 {
		t.Fatalf("a forged HELLO got pushes: %+v", got)
	}

	c := dialPush(t, g)
	c.write(signedHello(secret, codec.Field{Key: "push-epoch", Value: "elsewhere"}, codec.Field{Key: "push-seq", Value: "3"}))
	f = c.read()
	if h := headers(&f); h["status"] != "200" || h["push-reset"] != "1" || h["push-seq"] != "1" {
		t.Fatalf("signed HELLO answered %v %s", h, f.Body)
	}
	if p := c.nextPush(); p.seq != 1 || p.body != "x" {
		t.Fatalf("got %+v", p)
	}
}

// After GOAWAY a connection gets no new pushes (they wait for the device's next
// connection), and the acks its client still sends count: those pushes leave the log.
func TestPushAcksAfterGoAwayCount(t *testing.T) {
	g := runPushGateway(t, "")
	r := dialPush(t, g)
	r.hello("shop", "gone")
	mustPublish(t, g, "gone", "t", "one")
	mustPublish(t, g, "gone", "t", "two")
	ps := r.pushesUntilPong()
	if pushSeqs(ps) != "1,2" {
		t.Fatalf("pushes %s, want 1,2", pushSeqs(ps))
	}
	drained := make(chan error, 1)
	go func() { drained <- g.Drain(context.Background()) }()
	if f := r.read(); f.Type != mmtp.TypeGoAway {
		t.Fatalf("got %v, want GOAWAY", f.Type)
	}
	// Published after the GOAWAY: kept for the next connection, not sent on this one.
	mustPublish(t, g, "gone", "t", "three")
	for _, p := range ps {
		r.ack(p.stream)
	}
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.dec.ReadFrame(r.c)
		if err != nil {
			break // closed by the drain
		}
		if f.Type == mmtp.TypePush {
			t.Fatalf("PUSH seq %s sent after GOAWAY", headers(&f)["seq"])
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if st := g.push.stats(); st.Pending != 1 || st.Acked != 2 {
		t.Fatalf("after the drain: %d pending, %d acked; want 1 (seq 3) and 2", st.Pending, st.Acked)
	}
}
