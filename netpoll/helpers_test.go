package netpoll

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var engineKinds = []string{"epoll", "rwloop"}

// forEachEngine runs f as a subtest per engine kind.
func forEachEngine(t *testing.T, f func(t *testing.T, kind string)) {
	for _, k := range engineKinds {
		t.Run(k, func(t *testing.T) { f(t, k) })
	}
}

func newEngine(t testing.TB, cfg Config) Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// frame is the test protocol: a 4-byte big-endian length, then the payload.
func frame(payload []byte) []byte {
	b := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	copy(b[4:], payload)
	return b
}

func readFrame(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(h[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// testHandler records callbacks; onData, when set, replaces the default frame echo.
type testHandler struct {
	onData    func(c Conn, data []byte) (int, error)
	onOpen    func(c Conn)
	onTimeout func(c Conn, k TimeoutKind)

	opens    atomic.Int64
	mu       sync.Mutex
	closes   map[uint64]CloseReason
	closeN   map[uint64]int
	timeouts []TimeoutKind
	inData   map[uint64]bool
	overlap  atomic.Int64 // callbacks that overlapped OnData for one conn
	closedCh chan CloseReason
}

func newTestHandler() *testHandler {
	return &testHandler{closes: map[uint64]CloseReason{}, closeN: map[uint64]int{},
		inData: map[uint64]bool{}, closedCh: make(chan CloseReason, 100000)}
}

func (h *testHandler) OnOpen(c Conn) {
	h.opens.Add(1)
	if h.onOpen != nil {
		h.onOpen(c)
	}
}

func (h *testHandler) enter(c Conn) {
	h.mu.Lock()
	if h.inData[c.ID()] {
		h.overlap.Add(1)
	}
	h.inData[c.ID()] = true
	h.mu.Unlock()
}

func (h *testHandler) leave(c Conn) {
	h.mu.Lock()
	delete(h.inData, c.ID())
	h.mu.Unlock()
}

func (h *testHandler) OnData(c Conn, data []byte) (int, error) {
	h.enter(c)
	defer h.leave(c)
	if h.onData != nil {
		return h.onData(c, data)
	}
	return echoFrames(c, data)
}

// echoFrames writes back each complete frame whole and consumes it.
func echoFrames(c Conn, data []byte) (int, error) {
	used := 0
	for len(data)-used >= 4 {
		n := int(binary.BigEndian.Uint32(data[used:]))
		if len(data)-used-4 < n {
			break
		}
		if err := c.Write(data[used : used+4+n]); err != nil && !errors.Is(err, ErrClosed) {
			return used, err
		}
		used += 4 + n
	}
	return used, nil
}

func (h *testHandler) OnTimeout(c Conn, k TimeoutKind) {
	h.enter(c)
	defer h.leave(c)
	h.mu.Lock()
	h.timeouts = append(h.timeouts, k)
	h.mu.Unlock()
	if h.onTimeout != nil {
		h.onTimeout(c, k)
	}
}

func (h *testHandler) OnClose(c Conn, r CloseReason) {
	h.enter(c)
	h.leave(c)
	h.mu.Lock()
	h.closes[c.ID()] = r
	h.closeN[c.ID()]++
	h.mu.Unlock()
	h.closedCh <- r
}

// waitClose waits for the next OnClose and returns its reason.
func (h *testHandler) waitClose(t testing.TB, d time.Duration) CloseReason {
	t.Helper()
	select {
	case r := <-h.closedCh:
		return r
	case <-time.After(d):
		t.Fatalf("no OnClose within %v", d)
	}
	return ReasonNone
}

// checkCloses asserts every closed connection got OnClose exactly once and no callback
// overlapped another for the same connection.
func (h *testHandler) checkCloses(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.closeN {
		if n != 1 {
			t.Errorf("conn %d: OnClose called %d times", id, n)
		}
	}
	if o := h.overlap.Load(); o != 0 {
		t.Errorf("%d callbacks overlapped OnData on the same connection", o)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialN dials n connections to addr, closed when the test ends.
func dialN(t testing.TB, addr net.Addr, n int) []*net.TCPConn {
	t.Helper()
	cs := make([]*net.TCPConn, n)
	for i := range cs {
		cs[i] = dialTCP(t, addr)
		t.Cleanup(func() { cs[i].Close() })
	}
	return cs
}

func dialTCP(t testing.TB, addr net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	return c.(*net.TCPConn)
}
