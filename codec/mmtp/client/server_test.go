package client

import (
	"net"
	"sync"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// testServer is a minimal MMTP gateway stand-in: it accepts on 127.0.0.1:0 and hands every
// frame of every connection to handle, on that connection's reader goroutine.
type testServer struct {
	t      *testing.T
	ln     net.Listener
	handle func(sc *srvConn, f mmtp.Frame)
	conns  chan *srvConn
	wg     sync.WaitGroup
}

type srvConn struct {
	net.Conn
	mu     sync.Mutex
	frames []mmtp.Frame // every frame received, cloned
	got    chan mmtp.Frame
	prefix []byte // bytes before the first frame, when the test set prefixLen
}

func newTestServer(t *testing.T, prefixLen int, handle func(sc *srvConn, f mmtp.Frame)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, handle: handle, conns: make(chan *srvConn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			sc := &srvConn{Conn: nc, got: make(chan mmtp.Frame, 256)}
			s.conns <- sc
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				if prefixLen > 0 {
					sc.prefix = make([]byte, prefixLen)
					if _, err := readFull(nc, sc.prefix); err != nil {
						return
					}
				}
				dec := mmtp.NewDecoder(nil)
				for {
					f, err := dec.ReadFrame(nc)
					if err != nil {
						return
					}
					if err := mmtp.CheckClientFrame(&f); err != nil {
						t.Errorf("server got a bad frame: %v", err)
						return
					}
					cf := f.Clone()
					sc.mu.Lock()
					sc.frames = append(sc.frames, cf)
					sc.mu.Unlock()
					select {
					case sc.got <- cf:
					default:
					}
					if handle != nil {
						handle(sc, cf)
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case sc := <-s.conns:
				sc.Close()
				continue
			default:
			}
			break
		}
		s.wg.Wait()
	})
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (sc *srvConn) send(b []byte) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, _ = sc.Write(b)
}

func (sc *srvConn) respond(stream uint32, status int, body string, kv ...string) {
	r := &codec.Response{Status: status, Body: []byte(body)}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header = append(r.Header, codec.Field{Key: kv[i], Value: kv[i+1]})
	}
	sc.send(mmtp.AppendResponse(nil, stream, r))
}

// autoHello answers HELLO 200 and PING with PONG; other frames go to next.
func autoHello(next func(sc *srvConn, f mmtp.Frame)) func(sc *srvConn, f mmtp.Frame) {
	return func(sc *srvConn, f mmtp.Frame) {
		switch f.Type {
		case mmtp.TypeHello:
			sc.respond(f.StreamID, 200, "")
		case mmtp.TypePing:
			sc.send(mmtp.AppendPong(nil, f.Body))
		default:
			if next != nil {
				next(sc, f)
			}
		}
	}
}
