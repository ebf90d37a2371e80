package testserver

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// Push is enough of a gateway's push side (mmtp.md, "Push delivery") for the harness's
// own tests: an MMTP listener where devices say HELLO and acknowledge pushes, and an admin
// listener taking POST /v1/push. Each device has a log in one epoch, "E1"; an unacknowledged
// push is sent again on the device's next connection; a HELLO resumes after its push-seq.
// No window, no TTL, no eviction. Faults can be switched on to show the harness sees them.
type Push struct {
	ln    net.Listener
	admin *http.Server
	aln   net.Listener
	token string // bearer token POST /v1/push needs; "" accepts any

	faults PushFaults

	// Hellos counts HELLOs; Resumed those that carried push-epoch.
	Hellos, Resumed atomic.Int64

	mu   sync.Mutex
	devs map[string]*pushLog
	wg   sync.WaitGroup
}

type pushLog struct {
	seq  uint64 // the last assigned
	msgs []*pushMsg
	conn *pushConn // the device's current connection, nil when offline
}

type pushMsg struct {
	seq   uint64
	topic string
	body  []byte
	acked bool
}

type pushConn struct {
	c       net.Conn
	next    uint32
	streams map[uint32]*pushMsg // sent on this connection, not yet acknowledged
}

// PushFaults make the server misbehave, to show that the harness sees it.
type PushFaults struct {
	// Drop, when set, says which published pushes are accepted (202) but never stored:
	// a gateway that loses messages.
	Drop func(device string, seq uint64) bool
	// ForgetAcks makes every HELLO get the device's whole log again, acknowledged pushes
	// too: a gateway that redelivers what the device already processed.
	ForgetAcks bool
}

// NewPush listens on 127.0.0.1:0 for MMTP and for the admin API.
func NewPush(token string, faults PushFaults) (*Push, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Push{ln: ln, aln: aln, token: token, faults: faults, devs: map[string]*pushLog{}}
	s.admin = &http.Server{Handler: http.HandlerFunc(s.publish)}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.accept() }()
	go func() { defer s.wg.Done(); _ = s.admin.Serve(aln) }()
	return s, nil
}

// Addr is the MMTP address; AdminURL the admin API's base URL.
func (s *Push) Addr() string     { return s.ln.Addr().String() }
func (s *Push) AdminURL() string { return "http://" + s.aln.Addr().String() }

// Close stops both listeners and every connection.
func (s *Push) Close() {
	s.ln.Close()
	s.admin.Close()
	s.mu.Lock()
	for _, l := range s.devs {
		if l.conn != nil {
			l.conn.c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Unacked counts pushes stored and not yet acknowledged, over every device.
func (s *Push) Unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.devs {
		for _, m := range l.msgs {
			if !m.acked {
				n++
			}
		}
	}
	return n
}

func (s *Push) publish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/push" {
		http.Error(w, "only POST /v1/push", http.StatusNotFound)
		return
	}
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	var in struct {
		App, Device, Topic, Body string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Device == "" {
		http.Error(w, fmt.Sprintf("bad body: %v", err), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	l := s.log(in.Device)
	l.seq++
	seq := l.seq
	if s.faults.Drop == nil || !s.faults.Drop(in.Device, seq) {
		m := &pushMsg{seq: seq, topic: in.Topic, body: []byte(in.Body)}
		l.msgs = append(l.msgs, m)
		if l.conn != nil {
			l.conn.send(m)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"seq":%d,"epoch":"E1"}`, seq)
}

// log returns device's log; s.mu is held.
func (s *Push) log(device string) *pushLog {
	l := s.devs[device]
	if l == nil {
		l = &pushLog{}
		s.devs[device] = l
	}
	return l
}

// send writes m as a PUSH; s.mu is held, which keeps a device's pushes in seq order.
func (pc *pushConn) send(m *pushMsg) {
	pc.next++
	pc.streams[pc.next] = m
	h := codec.Header{{Key: "seq", Value: strconv.FormatUint(m.seq, 10)}, {Key: "epoch", Value: "E1"}}
	_, _ = pc.c.Write(mmtp.AppendPush(nil, pc.next, m.topic, h, m.body, false))
}

func (s *Push) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.serve(c) }()
	}
}

func (s *Push) serve(c net.Conn) {
	defer c.Close()
	pc := &pushConn{c: c, streams: map[uint32]*pushMsg{}}
	var device string
	defer func() {
		s.mu.Lock()
		if l := s.devs[device]; l != nil && l.conn == pc {
			l.conn = nil
		}
		s.mu.Unlock()
	}()
	dec := mmtp.NewDecoder(nil)
	for {
		f, err := dec.ReadFrame(c)
		if err != nil {
			return
		}
		s.mu.Lock()
		switch f.Type {
		case mmtp.TypeHello:
			d, _ := f.Get("device-id")
			device = string(d)
			e, _ := f.Get("push-epoch")
			q, _ := f.Get("push-seq")
			s.Hellos.Add(1)
			if len(e) > 0 {
				s.Resumed.Add(1)
			}
			l := s.log(device)
			if l.conn != nil {
				l.conn.c.Close() // the device's older connection
			}
			l.conn = pc
			hdr := codec.Header{{Key: "push-epoch", Value: "E1"}, {Key: "push-seq", Value: strconv.FormatUint(l.seq, 10)}}
			switch {
			case len(e) == 0:
			case string(e) != "E1":
				hdr = append(hdr, codec.Field{Key: "push-reset", Value: "1"})
			case !s.faults.ForgetAcks:
				done, _ := strconv.ParseUint(string(q), 10, 64)
				for _, m := range l.msgs {
					m.acked = m.acked || m.seq <= done
				}
			}
			_, _ = c.Write(mmtp.AppendResponse(nil, f.StreamID, &codec.Response{Status: 200, Header: hdr}))
			kept := l.msgs[:0]
			for _, m := range l.msgs {
				if s.faults.ForgetAcks || !m.acked {
					kept = append(kept, m)
					pc.send(m)
				}
			}
			if !s.faults.ForgetAcks {
				l.msgs = kept
			}
		case mmtp.TypePushAck:
			if m := pc.streams[f.StreamID]; m != nil {
				m.acked = true
				delete(pc.streams, f.StreamID)
			}
		case mmtp.TypePing:
			_, _ = c.Write(mmtp.AppendPong(nil, f.Body))
		case mmtp.TypeRequest:
			_, _ = c.Write(mmtp.AppendResponse(nil, f.StreamID, &codec.Response{Status: 404, Body: []byte("push only")}))
		}
		s.mu.Unlock()
	}
}
