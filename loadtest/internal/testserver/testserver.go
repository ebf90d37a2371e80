// Package testserver is a small MMTP and HTTP target for the harness's own tests: it
// answers the demo APIs (demo.echo, demo.sleep with milliseconds in the body, demo.size
// with a byte count in the body; demo.half and demo.cap refuse as an overloaded gateway
// does), PING with PONG, can verify signatures, and can stall every answer for a while to
// show that latency is charged from the intended send time.
// It uses plain net.Conn and goroutines on purpose: it is a reference, not the reactor.
package testserver

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// MMTP is a loopback MMTP server.
type MMTP struct {
	ln      net.Listener
	Secrets map[string]string // app id -> secret; non-nil means every REQUEST must be signed

	stallUntil atomic.Int64 // unix nanos: answers wait until then
	Requests   atomic.Int64
	Conns      atomic.Int64
	mu         sync.Mutex
	remotes    map[string]int // remote IPs seen
	wg         sync.WaitGroup
	conns      map[net.Conn]struct{}

	// demo.cap's token bucket: capRate a second, at most capRate/5 at once.
	capMu     sync.Mutex
	capRate   float64
	capTokens float64
	capLast   time.Time
}

// NewMMTP listens on 127.0.0.1:0 and serves until Close.
func NewMMTP(secrets map[string]string) (*MMTP, error) { return NewMMTPOn("127.0.0.1:0", secrets) }

// NewMMTPOn listens on addr and serves until Close.
func NewMMTPOn(addr string, secrets map[string]string) (*MMTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &MMTP{ln: ln, Secrets: secrets, remotes: map[string]int{}, conns: map[net.Conn]struct{}{}}
	go s.accept()
	return s, nil
}

// Addr is the listening address.
func (s *MMTP) Addr() string { return s.ln.Addr().String() }

// Stall makes every answer not yet written wait until d from now.
func (s *MMTP) Stall(d time.Duration) { s.stallUntil.Store(time.Now().Add(d).UnixNano()) }

// SetCapacity makes demo.cap answer at most rate requests a second (bursts of a fifth of
// it) and refuse the rest with 503.
func (s *MMTP) SetCapacity(rate float64) {
	s.capMu.Lock()
	s.capRate, s.capTokens, s.capLast = rate, rate/5, time.Now()
	s.capMu.Unlock()
}

func (s *MMTP) capTake() bool {
	s.capMu.Lock()
	defer s.capMu.Unlock()
	now := time.Now()
	s.capTokens = min(s.capRate/5, s.capTokens+now.Sub(s.capLast).Seconds()*s.capRate)
	s.capLast = now
	if s.capTokens < 1 {
		return false
	}
	s.capTokens--
	return true
}

// Remotes returns how many connections came from each remote IP.
func (s *MMTP) Remotes() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.remotes {
		out[k] = v
	}
	return out
}

// DropAll closes every open connection (the server side of a reconnect storm).
func (s *MMTP) DropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops the server and closes its connections.
func (s *MMTP) Close() {
	s.ln.Close()
	s.DropAll()
	s.wg.Wait()
}

func (s *MMTP) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
		s.mu.Lock()
		s.remotes[ip]++
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *MMTP) serve(c net.Conn) {
	defer s.wg.Done()
	s.Conns.Add(1)
	defer func() {
		s.Conns.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	var wmu sync.Mutex
	write := func(b []byte) {
		wmu.Lock()
		c.Write(b)
		wmu.Unlock()
	}
	// Small buffers: tests hold thousands of connections and a big buffer each would make
	// this reference server, not the harness, the bottleneck.
	var buf []byte
	tmp := make([]byte, 4<<10)
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		for {
			f, fl, err := mmtp.Parse(buf, nil)
			if err != nil {
				write(mmtp.AppendGoAway(nil, 0, "protocol_error"))
				return
			}
			if fl == 0 {
				break
			}
			fc := f.Clone()
			buf = buf[fl:]
			switch fc.Type {
			case mmtp.TypePing:
				write(mmtp.AppendPong(nil, fc.Body))
			case mmtp.TypeHello:
				write(mmtp.AppendResponse(nil, fc.StreamID, &codec.Response{Status: s.helloStatus(&fc)}))
			case mmtp.TypeRequest:
				s.Requests.Add(1)
				go s.answer(&fc, write)
			}
		}
		if len(buf) == 0 {
			buf = nil // do not keep a grown backing array while idle
		}
	}
}

func (s *MMTP) helloStatus(f *mmtp.Frame) int {
	if s.Secrets == nil {
		return 200
	}
	return s.verify(f, mmtp.HelloOperation)
}

func (s *MMTP) verify(f *mmtp.Frame, op string) int {
	get := func(k string) string { v, _ := f.Get(k); return string(v) }
	secret, ok := s.Secrets[get("app-id")]
	if !ok {
		return 401
	}
	sf := mmtp.SignFields{Operation: op, AppID: get("app-id"), DeviceID: get("device-id"),
		Timestamp: get("timestamp"), Nonce: get("nonce"), Body: f.Body}
	if !mmtp.Verify([]byte(secret), &sf, get("sign")) {
		return 401
	}
	return 200
}

func (s *MMTP) answer(f *mmtp.Frame, write func([]byte)) {
	op, _ := f.Get("operation-type")
	resp := &codec.Response{Status: 200}
	if s.Secrets != nil {
		if st := s.verify(f, string(op)); st != 200 {
			resp = codec.ErrorResponse(st, codec.ErrUnauthorized, "bad signature")
		}
	}
	if resp.Status == 200 {
		switch string(op) {
		case "demo.echo":
			resp.Body = f.Body
		case "demo.sleep":
			ms, _ := strconv.Atoi(string(bytes.TrimSpace(f.Body)))
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case "demo.half":
			// Refuses every other request as an overloaded gateway does.
			if f.StreamID%2 == 1 {
				resp = codec.ErrorResponse(503, codec.ErrUnavailable, "gateway overloaded")
			}
		case "demo.cap":
			// Refuses what is over its capacity, as a gateway past it does.
			if !s.capTake() {
				resp = codec.ErrorResponse(503, codec.ErrUnavailable, "gateway overloaded")
			}
		case "demo.size":
			n, _ := strconv.Atoi(string(bytes.TrimSpace(f.Body)))
			resp.Body = make([]byte, min(max(n, 0), 4<<20))
		default:
			resp = codec.ErrorResponse(404, codec.ErrNoRoute, "no route")
		}
	}
	if d := time.Until(time.Unix(0, s.stallUntil.Load())); d > 0 {
		time.Sleep(d)
	}
	write(mmtp.AppendResponse(nil, f.StreamID, resp))
}

// HTTP is a loopback HTTP/1.1 server answering POST /api/demo.echo and /api/demo.sleep.
type HTTP struct {
	srv *http.Server
	ln  net.Listener
}

// NewHTTP listens on 127.0.0.1:0.
func NewHTTP() (*HTTP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/demo.echo", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		w.Write(b.Bytes())
	})
	mux.HandleFunc("/api/demo.sleep", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		ms, _ := strconv.Atoi(b.String())
		time.Sleep(time.Duration(ms) * time.Millisecond)
	})
	h := &HTTP{srv: &http.Server{Handler: mux}, ln: ln}
	go h.srv.Serve(ln)
	return h, nil
}

// Addr is the listening address.
func (h *HTTP) Addr() string { return h.ln.Addr().String() }

// Close stops the server.
func (h *HTTP) Close() { h.srv.Close() }
