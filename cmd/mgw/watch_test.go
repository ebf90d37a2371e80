package main

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// pushGateway is a stand-in for a gateway's push side on 127.0.0.1:0: each connection gets
// the HELLO answer and pushes of its script, and what the client sent is recorded.
type pushGateway struct {
	ln      net.Listener
	mu      sync.Mutex
	hellos  []string   // "push-epoch/push-seq" of each HELLO
	acks    [][]uint32 // PUSH_ACK stream ids, per connection
	wg      sync.WaitGroup
	scripts []pushScript
}

type pushScript struct {
	hello  []string // HELLO 200 headers
	pushes []push
	// goAwayAfterAck: once this stream is acked, send GOAWAY and close.
	goAwayAfterAck uint32
}

type push struct {
	stream  uint32
	seq     uint64
	epoch   string
	topic   string
	msgID   string
	expires string
	body    string
}

func startPushGateway(t *testing.T, scripts ...pushScript) *pushGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &pushGateway{ln: ln, scripts: scripts}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.acks = append(g.acks, nil)
			g.mu.Unlock()
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer c.Close()
				g.serve(t, c, n)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); g.wg.Wait() })
	return g
}

func (g *pushGateway) serve(t *testing.T, c net.Conn, n int) {
	sc := pushScript{hello: []string{"push-epoch", "E", "push-seq", "0"}}
	if n < len(g.scripts) {
		sc = g.scripts[n]
	}
	dec := mmtp.NewDecoder(nil)
	for {
		f, err := dec.ReadFrame(c)
		if err != nil {
			return
		}
		switch f.Type {
		case mmtp.TypeHello:
			e, _ := f.Get("push-epoch")
			q, _ := f.Get("push-seq")
			g.mu.Lock()
			g.hellos = append(g.hellos, string(e)+"/"+string(q))
			g.mu.Unlock()
			r := &codec.Response{Status: 200}
			for i := 0; i+1 < len(sc.hello); i += 2 {
				r.Header = append(r.Header, codec.Field{Key: sc.hello[i], Value: sc.hello[i+1]})
			}
			b := mmtp.AppendResponse(nil, f.StreamID, r)
			for _, p := range sc.pushes {
				h := codec.Header{{Key: "seq", Value: strconv.FormatUint(p.seq, 10)}, {Key: "epoch", Value: p.epoch}}
				if p.msgID != "" {
					h = append(h, codec.Field{Key: "message-id", Value: p.msgID})
				}
				if p.expires != "" {
					h = append(h, codec.Field{Key: "expires", Value: p.expires})
				}
				b = mmtp.AppendPush(b, p.stream, p.topic, h, []byte(p.body), false)
			}
			if _, err := c.Write(b); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		case mmtp.TypePushAck:
			g.mu.Lock()
			g.acks[n] = append(g.acks[n], f.StreamID)
			g.mu.Unlock()
			if f.StreamID == sc.goAwayAfterAck {
				_, _ = c.Write(mmtp.AppendGoAway(nil, 0, mmtp.ReasonShutdown))
				return
			}
		case mmtp.TypePing:
			_, _ = c.Write(mmtp.AppendPong(nil, f.Body))
		}
	}
}

func TestWatchPrintsAcksAndResumes(t *testing.T) {
	scripts := []pushScript{
		{ // first connection: two pushes, then GOAWAY once both are acked
			hello: []string{"push-epoch", "E", "push-seq", "2"},
			pushes: []push{
				{stream: 1, seq: 1, epoch: "E", topic: "order.paid", msgID: "m1", body: `{"order":1}`},
				{stream: 2, seq: 2, epoch: "E", topic: "chat", expires: "1700000000000", body: "two\nlines"},
			},
			goAwayAfterAck: 2,
		},
		{ // second: seq 2 again (its ack may have raced the GOAWAY), then 3 and 4
			hello: []string{"push-epoch", "E", "push-seq", "4"},
			pushes: []push{
				{stream: 7, seq: 2, epoch: "E", topic: "chat", body: "two\nlines"},
				{stream: 8, seq: 3, epoch: "E", topic: "bin", msgID: "m3", body: "\xff\x00"},
				{stream: 9, seq: 4, epoch: "E", topic: "late", body: "four"},
			},
		},
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"text", nil, "1 E order.paid m1 {\"order\":1}\n" +
			"2 E chat - \"two\\nlines\"\n" +
			"3 E bin m3 \"\\xff\\x00\"\n"},
		{"json", []string{"-json"}, `{"seq":1,"epoch":"E","topic":"order.paid","message_id":"m1","body":"{\"order\":1}"}` + "\n" +
			`{"seq":2,"epoch":"E","topic":"chat","expires":1700000000000,"body":"two\nlines"}` + "\n" +
			`{"seq":3,"epoch":"E","topic":"bin","message_id":"m3","body_base64":"/wA="}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startPushGateway(t, scripts...)
			var stdout, stderr bytes.Buffer
			args := append([]string{"watch", "-addr", g.ln.Addr().String(), "-app", "wallet", "-device", "d1", "-count", "3", "-v"}, tc.args...)
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			if stdout.String() != tc.want {
				t.Fatalf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", stdout.String(), tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), `mgw watch: gateway sent GOAWAY (reason "shutdown"); reconnecting in 0s`) {
				t.Fatalf("stderr lacks the GOAWAY line:\n%s", stderr.String())
			}
			if !strings.Contains(stderr.String(), "3 pushes printed; resume with -resume E:3") {
				t.Fatalf("stderr lacks the resume hint:\n%s", stderr.String())
			}
			g.ln.Close()
			g.wg.Wait() // the watch closed its connection, so every server goroutine ends
			g.mu.Lock()
			defer g.mu.Unlock()
			// The resume: no cursor at first, then the last processed push.
			if got := strings.Join(g.hellos, " "); got != "/ E/2" {
				t.Fatalf("HELLOs %q", got)
			}
			// The duplicate is acked, the third push is acked before exit, the fourth is
			// left for the next connection.
			if got := fmt.Sprint(g.acks); got != "[[1 2] [7 8]]" {
				t.Fatalf("acks per connection %s, want [[1 2] [7 8]]", got)
			}
		})
	}
}

func TestWatchResumeFlag(t *testing.T) {
	g := startPushGateway(t, pushScript{
		hello:  []string{"push-epoch", "F", "push-seq", "9", "push-reset", "1"},
		pushes: []push{{stream: 1, seq: 9, epoch: "F", topic: "x", body: "nine"}},
	})
	var stdout, stderr bytes.Buffer
	code := run([]string{"watch", "-addr", g.ln.Addr().String(), "-device", "d1", "-count", "1", "-resume", "E:41"}, &stdout, &stderr)
	if code != 0 || stdout.String() != "9 F x - nine\n" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "push history was lost (new epoch F)") {
		t.Fatalf("stderr lacks the reset notice:\n%s", stderr.String())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hellos[0] != "E/41" {
		t.Fatalf("HELLO push-epoch/push-seq %q, want E/41", g.hellos[0])
	}
}

func TestWatchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"watch"}, // no -device
		{"watch", "-device", "d", "-resume", "E"},
		{"watch", "-device", "d", "-resume", "E:x"},
		{"watch", "-device", "d", "-count", "-1"},
		{"watch", "-device", "d", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %s", args, code, stderr.String())
		}
	}
}
