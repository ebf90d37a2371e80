package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp"
)

// TestRedialResumes runs a device through three connections: the first ends with GOAWAY
// after two pushes, the second redelivers seq 2 with seq 3 and then breaks, the third
// must resume from seq 3.
func TestRedialResumes(t *testing.T) {
	var mu sync.Mutex
	conns := map[*srvConn]int{}
	hellos := make(chan string, 4)
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		mu.Lock()
		n, ok := conns[sc]
		if !ok {
			n = len(conns) + 1
			conns[sc] = n
		}
		mu.Unlock()
		switch f.Type {
		case mmtp.TypeHello:
			e, _ := hdrOf(f, "push-epoch")
			q, _ := hdrOf(f, "push-seq")
			hellos <- fmt.Sprintf("%d:%s/%s", n, e, q)
			switch n {
			case 1:
				helloAnswer([]string{"push-epoch", "E", "push-seq", "2"}, pushFrame(1, "E", 1, "a"), pushFrame(2, "E", 2, "b"))(sc, f)
			case 2:
				helloAnswer([]string{"push-epoch", "E", "push-seq", "3"}, pushFrame(1, "E", 2, "b"), pushFrame(2, "E", 3, "c"))(sc, f)
			default:
				helloAnswer([]string{"push-epoch", "E", "push-seq", "3"})(sc, f)
			}
		case mmtp.TypePushAck:
			if f.StreamID == 2 && n == 1 {
				sc.send(mmtp.AppendGoAway(nil, 0, mmtp.ReasonShutdown))
				sc.Close()
			}
			if f.StreamID == 2 && n == 2 {
				sc.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var handled []string
	var events []string
	connected := 0
	cur := NewPushCursor("", 0)
	opts := Options{Hello: true, AppID: "a", DeviceID: "d", Push: cur, OnPushMessage: func(p *Push) error {
		handled = append(handled, string(p.Body))
		return nil
	}}
	err := Redial(ctx, s.addr(), opts, func(c *Client) {
		connected++
		if connected == 3 {
			cancel()
		}
	}, func(err error, wait time.Duration) {
		var ge *GoAwayError
		var ce *ConnError
		switch {
		case errors.As(err, &ge):
			events = append(events, fmt.Sprintf("goaway/%v", wait))
		case errors.As(err, &ce):
			events = append(events, fmt.Sprintf("broken/%v", wait))
		default:
			events = append(events, fmt.Sprintf("%v/%v", err, wait))
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Redial = %v, want context.Canceled", err)
	}
	close(hellos)
	var hs []string
	for h := range hellos {
		hs = append(hs, h)
	}
	if got := strings.Join(hs, " "); got != "1:/ 2:E/2 3:E/3" {
		t.Fatalf("HELLOs %q", got)
	}
	if got := strings.Join(handled, ""); got != "abc" {
		t.Fatalf("handled %q, want abc (the redelivered b dropped)", got)
	}
	if got := strings.Join(events, " "); got != "goaway/0s broken/100ms" {
		t.Fatalf("events %q", got)
	}
}

func TestRedialStopsOnRefusedHello(t *testing.T) {
	s := newTestServer(t, 0, func(sc *srvConn, f mmtp.Frame) {
		if f.Type == mmtp.TypeHello {
			sc.respond(f.StreamID, 401, "bad sign", "error", "unauthorized")
		}
	})
	err := Redial(ctx5(t), s.addr(), Options{Hello: true}, nil, nil)
	var he *HelloError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("Redial = %v, want the 401 HelloError", err)
	}
}
