package client

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// pushFrame is a revision-2 PUSH; seq 0 leaves seq and epoch out (revision 1).
func pushFrame(stream uint32, epoch string, seq uint64, body string) []byte {
	var h codec.Header
	if seq > 0 {
		h = codec.Header{{Key: "seq", Value: strconv.FormatUint(seq, 10)}, {Key: "epoch", Value: epoch}}
	}
	h = append(h, codec.Field{Key: "message-id", Value: "m" + strconv.Itoa(int(stream))})
	return mmtp.AppendPush(nil, stream, "t", h, []byte(body), false)
}

// helloAnswer answers HELLO 200 with the given headers, then writes after (pushes) in the
// same write, as a gateway resuming a log does; PING gets PONG.
func helloAnswer(kv []string, after ...[]byte) func(sc *srvConn, f mmtp.Frame) {
	return func(sc *srvConn, f mmtp.Frame) {
		switch f.Type {
		case mmtp.TypeHello:
			r := &codec.Response{Status: 200}
			for i := 0; i+1 < len(kv); i += 2 {
				r.Header = append(r.Header, codec.Field{Key: kv[i], Value: kv[i+1]})
			}
			b := mmtp.AppendResponse(nil, f.StreamID, r)
			for _, p := range after {
				b = append(b, p...)
			}
			sc.send(b)
		case mmtp.TypePing:
			sc.send(mmtp.AppendPong(nil, f.Body))
		}
	}
}

// nextOf returns the next frame of type typ the server received.
func nextOf(t *testing.T, sc *srvConn, typ mmtp.Type) mmtp.Frame {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f := <-sc.got:
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no %s from the client", typ)
		}
	}
}

func hdrOf(f mmtp.Frame, k string) (string, bool) {
	v, ok := f.Get(k)
	return string(v), ok
}

func TestPushHelloCarriesCursor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cur        *PushCursor
		wantEpoch  string // "" = no push-epoch/push-seq on HELLO
		wantSeq    string
		afterEpoch string
		afterSeq   uint64
	}{
		{"no cursor", nil, "", "", "", 0},
		{"empty cursor adopts the gateway's epoch", NewPushCursor("", 0), "", "", "E1", 0},
		{"saved cursor resumes", NewPushCursor("E1", 5), "E1", "5", "E1", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E1", "push-seq", "7"}))
			resets := 0
			c := dial(t, s, Options{Hello: true, AppID: "a", DeviceID: "d", Push: tc.cur,
				OnPushReset: func(string) { resets++ }})
			hello := nextOf(t, <-s.conns, mmtp.TypeHello)
			e, hasE := hdrOf(hello, "push-epoch")
			q, hasQ := hdrOf(hello, "push-seq")
			if tc.wantEpoch == "" {
				if hasE || hasQ {
					t.Fatalf("HELLO carries push-epoch %q push-seq %q without a cursor epoch", e, q)
				}
			} else if e != tc.wantEpoch || q != tc.wantSeq {
				t.Fatalf("HELLO push-epoch %q push-seq %q, want %q %q", e, q, tc.wantEpoch, tc.wantSeq)
			}
			if got := c.PushLog(); got != (PushLog{Epoch: "E1", Seq: 7}) {
				t.Fatalf("PushLog = %+v", got)
			}
			if tc.cur != nil {
				if e, q := tc.cur.Position(); e != tc.afterEpoch || q != tc.afterSeq {
					t.Fatalf("cursor (%q, %d), want (%q, %d)", e, q, tc.afterEpoch, tc.afterSeq)
				}
			}
			if resets != 0 {
				t.Fatalf("OnPushReset called %d times without a reset", resets)
			}
		})
	}
}

// got collects handled pushes.
type got struct {
	mu sync.Mutex
	ps []*Push
	ch chan *Push
}

func newGot() *got { return &got{ch: make(chan *Push, 64)} }

func (g *got) handle(p *Push) error {
	g.mu.Lock()
	g.ps = append(g.ps, p)
	g.mu.Unlock()
	g.ch <- p
	return nil
}

func (g *got) seqs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b []string
	for _, p := range g.ps {
		b = append(b, p.Epoch+":"+strconv.FormatUint(p.Seq, 10))
	}
	return strings.Join(b, " ")
}

func TestPushDuplicateDroppedButAcked(t *testing.T) {
	s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E1", "push-seq", "3"},
		pushFrame(10, "E1", 2, "two"),   // processed before this connection
		pushFrame(11, "E1", 3, "three"), // new
		pushFrame(12, "E1", 3, "three"), // redelivered
		pushFrame(13, "E1", 1, "one"),   // older still
	))
	g := newGot()
	cur := NewPushCursor("E1", 2)
	dial(t, s, Options{Hello: true, Push: cur, OnPushMessage: g.handle})
	sc := <-s.conns
	for _, want := range []uint32{10, 11, 12, 13} {
		if ack := nextOf(t, sc, mmtp.TypePushAck); ack.StreamID != want {
			t.Fatalf("PUSH_ACK stream %d, want %d", ack.StreamID, want)
		}
	}
	if got := g.seqs(); got != "E1:3" {
		t.Fatalf("handled %q, want only E1:3", got)
	}
	p := g.ps[0]
	if p.Topic != "t" || string(p.Body) != "three" || p.MessageID != "m11" || p.StreamID != 11 {
		t.Fatalf("push = %+v", p)
	}
	if e, q := cur.Position(); e != "E1" || q != 3 {
		t.Fatalf("cursor (%q, %d), want (E1, 3)", e, q)
	}
}

func TestPushAckedAfterHandlerReturns(t *testing.T) {
	pinged := make(chan struct{}, 1)
	var sc *srvConn
	s := newTestServer(t, 0, func(c *srvConn, f mmtp.Frame) {
		helloAnswer([]string{"push-epoch", "E1", "push-seq", "1"}, pushFrame(5, "E1", 1, "x"))(c, f)
		if f.Type == mmtp.TypePing {
			pinged <- struct{}{}
		}
	})
	cur := NewPushCursor("", 0)
	var c *Client
	var during []mmtp.Type
	var seqDuring uint64
	handled, ready := make(chan struct{}), make(chan struct{})
	c = dial(t, s, Options{Hello: true, Push: cur, OnPushMessage: func(p *Push) error {
		<-ready
		// A PING written now reaches the server after anything written before it, so once
		// the server has it, the server's record shows whether an ack went out early.
		go c.Ping(ctx5(t))
		<-pinged
		sc.mu.Lock()
		for _, f := range sc.frames {
			during = append(during, f.Type)
		}
		sc.mu.Unlock()
		seqDuring = cur.Seq()
		close(handled)
		return nil
	}})
	sc = <-s.conns
	close(ready)
	<-handled
	if ack := nextOf(t, sc, mmtp.TypePushAck); ack.StreamID != 5 {
		t.Fatalf("ack stream %d", ack.StreamID)
	}
	for _, typ := range during {
		if typ == mmtp.TypePushAck {
			t.Fatalf("PUSH_ACK sent while the handler was running: %v", during)
		}
	}
	if seqDuring != 0 {
		t.Fatalf("cursor advanced to %d before the handler returned", seqDuring)
	}
	if q := cur.Seq(); q != 1 {
		t.Fatalf("cursor seq %d after the ack, want 1", q)
	}
}

func TestPushResetAdoptsEpoch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hello []string
	}{
		{"push-reset", []string{"push-epoch", "E2", "push-seq", "2", "push-reset", "1"}},
		{"other epoch without push-reset", []string{"push-epoch", "E2", "push-seq", "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, 0, helloAnswer(tc.hello,
				pushFrame(1, "E2", 1, "a"), pushFrame(2, "E2", 2, "b")))
			g := newGot()
			var mu sync.Mutex
			var events []string
			cur := NewPushCursor("E1", 9)
			dial(t, s, Options{Hello: true, Push: cur,
				OnPushReset: func(e string) { mu.Lock(); events = append(events, "reset:"+e); mu.Unlock() },
				OnPushMessage: func(p *Push) error {
					mu.Lock()
					events = append(events, "push:"+strconv.FormatUint(p.Seq, 10))
					mu.Unlock()
					return g.handle(p)
				}})
			sc := <-s.conns
			nextOf(t, sc, mmtp.TypePushAck)
			nextOf(t, sc, mmtp.TypePushAck)
			mu.Lock()
			got := strings.Join(events, " ")
			mu.Unlock()
			// Seq 1 and 2 of E2 are below E1's 9 but belong to a new log: handled, after the reset.
			if got != "reset:E2 push:1 push:2" {
				t.Fatalf("events %q", got)
			}
			if e, q := cur.Position(); e != "E2" || q != 2 {
				t.Fatalf("cursor (%q, %d), want (E2, 2)", e, q)
			}
		})
	}
}

func TestPushNewEpochMidConnection(t *testing.T) {
	s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E1", "push-seq", "0"},
		pushFrame(1, "E1", 1, "a"), pushFrame(2, "E3", 1, "b"), pushFrame(3, "E3", 1, "b")))
	g := newGot()
	var resets []string
	cur := NewPushCursor("", 0)
	c := dial(t, s, Options{Hello: true, Push: cur, OnPushMessage: g.handle,
		OnPushReset: func(e string) { resets = append(resets, e) }})
	sc := <-s.conns
	for range 3 {
		nextOf(t, sc, mmtp.TypePushAck)
	}
	c.Close() // no callback runs after Close returns
	if got := g.seqs(); got != "E1:1 E3:1" {
		t.Fatalf("handled %q", got)
	}
	if len(resets) != 1 || resets[0] != "E3" {
		t.Fatalf("resets %q, want [E3]", resets)
	}
	if e, q := cur.Position(); e != "E3" || q != 1 {
		t.Fatalf("cursor (%q, %d)", e, q)
	}
}

func TestPushRevision1WithoutSeq(t *testing.T) {
	s := newTestServer(t, 0, helloAnswer(nil, pushFrame(7, "", 0, "same"), pushFrame(8, "", 0, "same")))
	var topics []string
	cur := NewPushCursor("", 0)
	c := dial(t, s, Options{Hello: true, Push: cur, OnPush: func(topic string, hdr codec.Header, body []byte) {
		topics = append(topics, topic+"/"+string(body)+"/"+hdr.Value("message-id"))
	}})
	sc := <-s.conns
	for _, want := range []uint32{7, 8} {
		if ack := nextOf(t, sc, mmtp.TypePushAck); ack.StreamID != want {
			t.Fatalf("ack %d, want %d", ack.StreamID, want)
		}
	}
	c.Close()
	if strings.Join(topics, " ") != "t/same/m7 t/same/m8" {
		t.Fatalf("handled %q: a push without seq is never a duplicate", topics)
	}
	if e, q := cur.Position(); e != "" || q != 0 || c.PushLog() != (PushLog{}) {
		t.Fatalf("cursor (%q, %d), PushLog %+v after a revision-1 gateway", e, q, c.PushLog())
	}
}

func TestPushMalformedHeadersEndConnection(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hdr   codec.Header
		field string
	}{
		{"seq not decimal", codec.Header{{Key: "seq", Value: "1x"}, {Key: "epoch", Value: "E"}}, "seq"},
		{"seq zero", codec.Header{{Key: "seq", Value: "0"}, {Key: "epoch", Value: "E"}}, "seq"},
		{"seq overflow", codec.Header{{Key: "seq", Value: "99999999999999999999"}, {Key: "epoch", Value: "E"}}, "seq"},
		{"seq without epoch", codec.Header{{Key: "seq", Value: "1"}}, "epoch"},
		{"epoch without seq", codec.Header{{Key: "epoch", Value: "E"}}, "seq"},
		{"epoch bad byte", codec.Header{{Key: "seq", Value: "1"}, {Key: "epoch", Value: "E/1"}}, "epoch"},
		{"epoch too long", codec.Header{{Key: "seq", Value: "1"}, {Key: "epoch", Value: strings.Repeat("e", 65)}}, "epoch"},
		{"expires", codec.Header{{Key: "seq", Value: "1"}, {Key: "epoch", Value: "E"}, {Key: "expires", Value: "soon"}}, "expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E", "push-seq", "0"},
				mmtp.AppendPush(nil, 1, "t", tc.hdr, nil, false)))
			handled := false
			c := dial(t, s, Options{Hello: true, Push: NewPushCursor("", 0), OnPush: func(string, codec.Header, []byte) { handled = true }})
			<-c.Done() // closed after the reader exits
			var pe *mmtp.ProtocolError
			if !errors.As(c.Err(), &pe) || !strings.Contains(pe.Reason, tc.field) {
				t.Fatalf("Err = %v, want a protocol error naming %s", c.Err(), tc.field)
			}
			if handled {
				t.Fatal("a malformed push was handed to the app")
			}
		})
	}
	t.Run("HELLO push-seq", func(t *testing.T) {
		s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E", "push-seq", "-1"}))
		_, err := Dial(ctx5(t), s.addr(), Options{Hello: true})
		var pe *mmtp.ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "push-seq") {
			t.Fatalf("Dial err = %v, want a protocol error naming push-seq", err)
		}
	})
}

func TestCloseAcksPushBeingHandled(t *testing.T) {
	s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E", "push-seq", "1"},
		pushFrame(3, "E", 1, "x"), pushFrame(4, "E", 2, "y")))
	entered, release := make(chan struct{}), make(chan struct{})
	var n int
	cur := NewPushCursor("", 0)
	c := dial(t, s, Options{Hello: true, Push: cur, OnPushMessage: func(p *Push) error {
		n++
		if n == 1 {
			close(entered)
			<-release
		}
		return nil
	}})
	sc := <-s.conns
	<-entered
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	// Give Close time to start waiting; if it has not yet, the test passes vacuously
	// rather than failing.
	time.Sleep(50 * time.Millisecond)
	close(release)
	<-closed
	if ack := nextOf(t, sc, mmtp.TypePushAck); ack.StreamID != 3 {
		t.Fatalf("ack stream %d, want 3", ack.StreamID)
	}
	if n != 1 {
		t.Fatalf("%d pushes handled; the one after Close must not be", n)
	}
	if q := cur.Seq(); q != 1 {
		t.Fatalf("cursor seq %d, want 1", q)
	}
}

func TestPushDeclinedStopsDelivery(t *testing.T) {
	s := newTestServer(t, 0, helloAnswer([]string{"push-epoch", "E", "push-seq", "3"},
		pushFrame(1, "E", 1, "a"), pushFrame(2, "E", 2, "b"), pushFrame(3, "E", 3, "c")))
	var handled []uint64
	cur := NewPushCursor("", 0)
	c := dial(t, s, Options{Hello: true, Push: cur, OnPushMessage: func(p *Push) error {
		handled = append(handled, p.Seq)
		if p.Seq == 2 {
			return errors.New("not now")
		}
		return nil
	}})
	sc := <-s.conns
	if ack := nextOf(t, sc, mmtp.TypePushAck); ack.StreamID != 1 {
		t.Fatalf("ack stream %d", ack.StreamID)
	}
	// The first PONG arrives behind the pushes, so the reader has handled them (and sent
	// any ack) before the second PING is written; its PONG leaves the server only after
	// the server recorded every frame before it.
	for range 2 {
		if _, err := c.Ping(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	acks := 0
	for _, f := range sc.frames {
		if f.Type == mmtp.TypePushAck {
			acks++
		}
	}
	if acks != 1 || len(handled) != 2 || cur.Seq() != 1 {
		t.Fatalf("acks %d, handled %v, cursor seq %d: want 1 ack, [1 2], 1", acks, handled, cur.Seq())
	}
}
