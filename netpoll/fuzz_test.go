package netpoll

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// FuzzSchedule feeds random schedules of client writes (in random splits), reads,
// closes, half-closes and resets, and server-side closes, pushes, CloseAfterFlush and
// pause/resume, against both engines. Properties: every byte a client reads is a whole
// frame, echoes come in order and unaltered, pushes are intact, OnClose runs exactly once
// per connection and never overlaps OnData, and every connection and queued byte is gone
// at the end.
func FuzzSchedule(f *testing.F) {
	f.Add([]byte{0, 10, 0, 200, 1, 0, 6, 1, 0, 50})
	f.Add([]byte{9, 0, 0, 255, 8, 0, 0, 33, 1, 0, 8, 0, 1, 0})
	f.Add([]byte{0, 3, 5, 0, 0, 7, 2, 0})
	f.Add([]byte{0, 100, 3, 0, 1, 0, 4, 1, 0, 20})
	f.Add([]byte{6, 0, 6, 0, 7, 0, 0, 1, 1, 0, 6, 1, 9, 1, 0, 2, 1, 1})
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 5, 0, 0, 1, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 250, 6, 0}, 30))
	h := &fuzzHandler{}
	engines := map[string]Engine{}
	addrs := map[string]net.Addr{}
	for _, k := range engineKinds {
		e, err := New(Config{Kind: k, Workers: 2, WriteSoftLimit: 16 << 10, WriteHardLimit: 4 << 20})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { e.Close() })
		a, err := e.Listen("fuzz", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			f.Fatal(err)
		}
		engines[k], addrs[k] = e, a
	}
	f.Fuzz(func(t *testing.T, sched []byte) {
		if len(sched) > 400 {
			sched = sched[:400]
		}
		for _, k := range engineKinds {
			st := newSchedState(t, h)
			st.run(addrs[k], sched)
			st.finish(engines[k])
		}
	})
}

// fuzzHandler forwards to the schedule state of the input being run.
type fuzzHandler struct{ cur atomic.Pointer[schedState] }

// OnOpen binds the connection to the current input's state, so a late callback of an
// earlier input's connection is still checked against that input.
func (h *fuzzHandler) OnOpen(c Conn) {
	st := h.cur.Load()
	c.SetContext(st)
	st.onOpen(c)
}
func (h *fuzzHandler) OnData(c Conn, d []byte) (int, error) {
	return c.Context().(*schedState).th.OnData(c, d)
}
func (h *fuzzHandler) OnTimeout(c Conn, k TimeoutKind) {}
func (h *fuzzHandler) OnClose(c Conn, r CloseReason)   { c.Context().(*schedState).th.OnClose(c, r) }

type schedClient struct {
	c       *net.TCPConn
	sc      Conn
	out     []byte // frames to send, back to back
	wpos    int    // how much of out went to the socket
	abrupt  bool   // the server side was closed without flushing
	sentSeq int
	rbuf    []byte
	echoSeq int
	pauses  int
	dead    bool // client closed or reset: no further client I/O
	wdone   bool // client half-closed
}

type schedState struct {
	t      *testing.T
	th     *testHandler
	mu     sync.Mutex
	byAddr map[string]Conn
	cl     [4]*schedClient
	pushes sync.WaitGroup
}

func newSchedState(t *testing.T, h *fuzzHandler) *schedState {
	st := &schedState{t: t, th: newTestHandler(), byAddr: map[string]Conn{}}
	h.cur.Store(st)
	return st
}

func (st *schedState) onOpen(c Conn) {
	st.mu.Lock()
	st.byAddr[c.RemoteAddr().String()] = c
	st.mu.Unlock()
	st.th.OnOpen(c)
}

func (st *schedState) dial(addr net.Addr, i int) {
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		st.t.Fatalf("dial: %v", err)
	}
	cl := &schedClient{c: c.(*net.TCPConn)}
	deadline := time.Now().Add(5 * time.Second)
	for cl.sc == nil {
		st.mu.Lock()
		cl.sc = st.byAddr[c.LocalAddr().String()]
		st.mu.Unlock()
		if time.Now().After(deadline) {
			st.t.Fatal("server never opened the connection")
		}
		if cl.sc == nil {
			time.Sleep(time.Millisecond)
		}
	}
	if old := st.cl[i]; old != nil {
		st.retire(old)
	}
	st.cl[i] = cl
}

// clientFrame is the next client frame: 'C', its sequence number, filler.
func clientFrame(seq, size int) []byte {
	p := make([]byte, 5+size)
	p[0] = 'C'
	binary.BigEndian.PutUint32(p[1:], uint32(seq))
	for i := 5; i < len(p); i++ {
		p[i] = byte(seq + i)
	}
	return frame(p)
}

var pushMsg = frame(append([]byte{'S'}, bytes.Repeat([]byte("push"), 300)...))

func (st *schedState) run(addr net.Addr, sched []byte) {
	for i := range st.cl {
		st.dial(addr, i)
	}
	for k := 0; k+1 < len(sched); k += 2 {
		op, arg := sched[k]%10, int(sched[k+1])
		cl := st.cl[arg%len(st.cl)]
		switch op {
		case 0: // client sends part of its stream, starting a new frame when needed
			if cl.dead || cl.wdone {
				continue
			}
			if cl.wpos == len(cl.out) {
				cl.out = append(cl.out, clientFrame(cl.sentSeq, arg*20)...)
				cl.sentSeq++
			}
			st.writeSome(cl, 1+arg)
		case 1:
			st.read(cl, 20*time.Millisecond)
		case 2:
			if !cl.dead {
				cl.c.Close()
				cl.dead = true
			}
		case 3:
			if !cl.dead && !cl.wdone {
				cl.c.CloseWrite()
				cl.wdone = true
			}
		case 4:
			if !cl.dead {
				cl.c.SetLinger(0)
				cl.c.Close()
				cl.dead = true
			}
		case 5:
			cl.sc.Close()
			cl.abrupt = true
		case 6:
			st.pushes.Add(1)
			go func() {
				defer st.pushes.Done()
				err := cl.sc.Write(pushMsg)
				if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrWriteLimit) &&
					!errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
					st.t.Errorf("push: %v", err)
				}
			}()
		case 7:
			cl.sc.CloseAfterFlush(ReasonLocal)
		case 8:
			if arg&0x80 != 0 && cl.pauses > 0 {
				cl.sc.ResumeRead()
				cl.pauses--
			} else {
				cl.sc.PauseRead()
				cl.pauses++
			}
		case 9:
			st.dial(addr, arg%len(st.cl))
		}
	}
}

func (st *schedState) writeSome(cl *schedClient, n int) {
	end := min(cl.wpos+n, len(cl.out))
	cl.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	w, _ := cl.c.Write(cl.out[cl.wpos:end])
	cl.wpos += w
}

// read takes what arrives within d and checks it frame by frame.
func (st *schedState) read(cl *schedClient, d time.Duration) bool {
	if cl.dead {
		return false
	}
	cl.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	eof := false
	for {
		n, err := cl.c.Read(buf)
		cl.rbuf = append(cl.rbuf, buf[:n]...)
		if err != nil {
			eof = err == io.EOF || !isTimeout(err)
			break
		}
	}
	for len(cl.rbuf) >= 4 {
		n := int(binary.BigEndian.Uint32(cl.rbuf))
		if len(cl.rbuf) < 4+n {
			break
		}
		st.checkFrame(cl, cl.rbuf[4:4+n])
		cl.rbuf = cl.rbuf[4+n:]
	}
	return eof
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (st *schedState) checkFrame(cl *schedClient, p []byte) {
	switch {
	case len(p) > 0 && p[0] == 'S':
		if !bytes.Equal(frame(p), pushMsg) {
			st.t.Errorf("push frame altered (%d bytes)", len(p))
		}
	case len(p) >= 5 && p[0] == 'C':
		seq := int(binary.BigEndian.Uint32(p[1:]))
		want := clientFrame(seq, len(p)-5)
		if seq != cl.echoSeq || !bytes.Equal(want[4:], p) {
			st.t.Errorf("echo seq %d (want %d) or content wrong", seq, cl.echoSeq)
		}
		cl.echoSeq++
	default:
		st.t.Errorf("bytes that are no frame of ours: %q", p[:min(len(p), 16)])
	}
}

// retire ends a client: resume the server side, read the rest, close.
func (st *schedState) retire(cl *schedClient) {
	for ; cl.pauses > 0; cl.pauses-- {
		cl.sc.ResumeRead()
	}
	if !cl.dead {
		if !cl.wdone {
			cl.c.CloseWrite()
		}
		for i := 0; i < 100 && !st.read(cl, 20*time.Millisecond); i++ {
		}
		if len(cl.rbuf) != 0 && !cl.abrupt {
			st.t.Errorf("%d bytes of a partial frame at the end of the stream", len(cl.rbuf))
		}
	}
	cl.c.Close()
	cl.dead = true
}

func (st *schedState) finish(e Engine) {
	for _, cl := range st.cl {
		st.retire(cl)
	}
	st.pushes.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.Stats()
		st.th.mu.Lock()
		closes := int64(len(st.th.closeN))
		st.th.mu.Unlock()
		if s.Open == 0 && s.QueuedBytes == 0 && s.PendingBytes == 0 && closes == st.th.opens.Load() {
			break
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("after the schedule: open %d queued %d pending %d", s.Open, s.QueuedBytes, s.PendingBytes)
		}
		time.Sleep(2 * time.Millisecond)
	}
	st.th.checkCloses(st.t)
	if int64(len(st.th.closeN)) != st.th.opens.Load() {
		st.t.Errorf("%d opens but %d closes", st.th.opens.Load(), len(st.th.closeN))
	}
}
