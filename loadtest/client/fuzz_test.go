package client

import (
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/netpoll"
)

// FuzzParseResponseHead: any head either parses to a status in 100..999 and a sane length
// or fails; it never panics.
func FuzzParseResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 12"))
	f.Add([]byte("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked"))
	f.Add([]byte("HTTP/1.0 999 x\r\nA: b\r\nContent-Length: 00"))
	f.Add([]byte("SSH-2.0-OpenSSH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, cl, _, err := parseResponseHead(b)
		if err == nil && (st < 100 || st > 999 || cl < -1) {
			t.Fatalf("status %d length %d accepted", st, cl)
		}
	})
}

// FuzzOnHTTP feeds arbitrary bytes as a target's answers, split at an arbitrary point:
// the connection consumes at most what it was given and never answers more requests than
// were in flight.
func FuzzOnHTTP(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n"), 10)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"), 40)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), 3)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		c := bareClient(Config{Protocol: "http1"})
		cn := &conn{cl: c, fifo: []sent{{time.Now(), time.Now()}, {time.Now(), time.Now()}, {time.Now(), time.Now()}}}
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		n, err := cn.onHTTP(&writeCounter{}, b[:split])
		if n < 0 || n > split {
			t.Fatalf("consumed %d of %d", n, split)
		}
		if err != nil {
			return
		}
		rest := append(append([]byte(nil), b[n:split]...), b[split:]...)
		m, _ := cn.onHTTP(&writeCounter{}, rest)
		if m < 0 || m > len(rest) {
			t.Fatalf("consumed %d of %d", m, len(rest))
		}
		if got := c.ok.Load() + c.Snapshot().TotalErrors(); got > 3+2 {
			t.Fatalf("%d outcomes from 3 requests", got)
		}
	})
}

// writeCounter is the part of netpoll.Conn that onMMTP and onHTTP use: it counts writes,
// and its bytes are ready now.
type writeCounter struct {
	netpoll.Conn
	writes, closes int
}

func (w *writeCounter) Write([]byte) error { w.writes++; return nil }
func (w *writeCounter) Close() error       { w.closes++; return nil }
func (w *writeCounter) ReadyAt() (ready, now time.Time) {
	now = time.Now()
	return now, now
}

// FuzzOnMMTPPush feeds arbitrary frames to a push device: it never panics, consumes at most
// what it was given, and accounts for every PUSH it took: processed, duplicate, stale,
// crashed or without seq.
func FuzzOnMMTPPush(f *testing.F) {
	push := func(stream uint32, seq, epoch, topic, body string) []byte {
		return mmtp.AppendPush(nil, stream, topic, codec.Header{{Key: "seq", Value: seq}, {Key: "epoch", Value: epoch}}, []byte(body), false)
	}
	var twice []byte
	twice = append(twice, push(1, "1", "E", "run", "123")...)
	twice = append(twice, push(2, "1", "E", "run", "123")...)
	f.Add(twice)
	f.Add(append(push(1, "2", "E", "old", "x"), push(2, "1", "F", "run", "-1")...))
	f.Add(push(3, "x", "", "run", ""))
	f.Add(mmtp.AppendResponse(nil, helloStream, &codec.Response{Status: 200, Header: codec.Header{{Key: "push-epoch", Value: "E"}, {Key: "push-reset", Value: "1"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &Client{cfg: Config{Protocol: "mmtp", Push: &PushConfig{Topic: "run", CrashEvery: 3}}, rec: hist.NewRecorder(),
			errs: map[string]uint64{}, push: newPushState(1, time.Second)}
		cn := &conn{cl: c, helloCh: make(chan int, 1)}
		wc := &writeCounter{}
		n, _ := cn.onMMTP(wc, b)
		if n < 0 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		p := c.PushFigures()
		noSeq := c.Snapshot().Errors[ErrPushNoSeq]
		if p.Received != p.Processed+p.Duplicates+p.Stale+p.Crashes+noSeq {
			t.Fatalf("received %d != processed+duplicates+stale+crashes+no_seq: %+v no_seq %d", p.Received, p, noSeq)
		}
		if p.Crashes != uint64(wc.closes) || p.Crashes > 1 {
			t.Fatalf("%d crashes, %d closes: a crash closes, once", p.Crashes, wc.closes)
		}
	})
}
