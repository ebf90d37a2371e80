package client

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/netpoll"
)

// requestMaker builds one request's bytes for a connection.
type requestMaker interface {
	build(dst []byte, cn *conn, stream uint32) []byte
}

// mmtpRequests builds MMTP REQUEST (and HELLO) frames with codec/mmtp.
type mmtpRequests struct {
	cfg   *Config
	nonce atomic.Uint64
}

// authHeader returns the signing headers for op and body, or nil when not signing.
func (m *mmtpRequests) authHeader(op string, cn *conn, body []byte) codec.Header {
	if m.cfg.Secret == "" {
		return nil
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	nonce := cn.device + "-" + strconv.FormatUint(m.nonce.Add(1), 36)
	f := mmtp.SignFields{Operation: op, AppID: m.cfg.AppID, DeviceID: cn.device, Timestamp: ts, Nonce: nonce, Body: body}
	return codec.Header{{Key: "app-id", Value: m.cfg.AppID}, {Key: "device-id", Value: cn.device},
		{Key: "timestamp", Value: ts}, {Key: "nonce", Value: nonce}, {Key: "sign", Value: mmtp.Sign([]byte(m.cfg.Secret), &f)}}
}

func (m *mmtpRequests) build(dst []byte, cn *conn, stream uint32) []byte {
	return mmtp.AppendRequest(dst, stream, m.cfg.API, m.authHeader(m.cfg.API, cn, m.cfg.Body), m.cfg.Body, false)
}

// hello builds the HELLO: app and device, signed with the literal mmtp.hello when signing.
func (m *mmtpRequests) hello(dst []byte, cn *conn) []byte {
	hdr := m.authHeader(mmtp.HelloOperation, cn, nil)
	if hdr == nil {
		hdr = codec.Header{{Key: "device-id", Value: cn.device}}
		if m.cfg.AppID != "" {
			hdr = append(hdr, codec.Field{Key: "app-id", Value: m.cfg.AppID})
		}
	}
	if p := cn.cl.push; p != nil {
		if epoch, seq := p.resumeHeader(cn.idx); epoch != "" {
			hdr = append(hdr, codec.Field{Key: "push-epoch", Value: epoch},
				codec.Field{Key: "push-seq", Value: strconv.FormatUint(seq, 10)})
		}
	}
	return mmtp.AppendFrame(dst, mmtp.TypeHello, 0, helloStream, hdr, nil)
}

// openPing is the payload of the PING sent on every new connection.
var openPing = [8]byte{'m', 'g', 'w', '-', 'o', 'p', 'e', 'n'}

func appendPing(dst, payload []byte) []byte { return mmtp.AppendPing(dst, payload) }

// onMMTP handles every whole frame in data.
func (cn *conn) onMMTP(c netpoll.Conn, data []byte) (int, error) {
	off := 0
	var rt readTimes // the read's (answered)
	for {
		f, n, err := mmtp.Parse(data[off:], nil)
		if err == nil && n > 0 {
			err = mmtp.CheckServerFrame(&f)
		}
		if err != nil {
			cn.cl.countErr(ErrProtocol, 1)
			return off, fmt.Errorf("target sent invalid MMTP: %w", err)
		}
		if n == 0 {
			return off, nil
		}
		off += n
		switch f.Type {
		case mmtp.TypeResponse:
			st, _ := mmtp.ResponseStatus(&f)
			if f.StreamID == helloStream && cn.helloCh != nil {
				if cn.cl.push != nil && st == 200 {
					// Here, not in the dialer: the pushes right behind the answer must see it.
					cn.cl.push.helloAnswered(cn.idx, &f)
				}
				select {
				case cn.helloCh <- st:
				default:
				}
				continue
			}
			cn.mu.Lock()
			r, ok := cn.inflight[f.StreamID]
			delete(cn.inflight, f.StreamID)
			delete(cn.tries, f.StreamID)
			cn.mu.Unlock()
			if ok { // else it timed out already and was counted then
				if rt.ready.IsZero() {
					rt = cn.readTimes(c)
				}
				cn.answered(r.intended, r.at, &rt, st)
			}
		case mmtp.TypePong:
			if string(f.Body) == string(openPing[:]) {
				continue
			}
			if len(f.Body) == 8 {
				t := time.Unix(0, int64(binary.BigEndian.Uint64(f.Body)))
				if t.UnixNano() >= cn.cl.resetAt.Load() { // else a warm-up PING's (answered)
					cn.cl.rec.Record(int64(time.Since(t)))
					cn.cl.ok.Add(1)
					cn.cl.pings.Add(-1)
				}
			}
		case mmtp.TypePing:
			_ = c.Write(mmtp.AppendPong(nil, f.Body))
		case mmtp.TypePush:
			if cn.cl.push == nil {
				_ = c.Write(mmtp.AppendPushAck(nil, f.StreamID))
			} else if cn.onPush(c, &f) {
				return off, nil // closed: the rest is never processed, as in a crashed app
			}
		case mmtp.TypeGoAway:
			cn.cl.countErr(ErrGoAway, 1)
			// Send nothing new here; the gateway answers what it accepted and closes.
			if cn.live.Swap(false) {
				cn.cl.open.Add(-1)
			}
			cn.goAway(&f)
		}
	}
}

// goAway applies a GOAWAY's last-stream-id: the requests above it were refused, never
// processed, and go out again on another connection; those at or below it stay in flight,
// owed an answer. A later GOAWAY may only lower last-stream-id.
func (cn *conn) goAway(f *mmtp.Frame) {
	last, _ := mmtp.LastStreamID(f) // validated by CheckServerFrame
	type refusal struct {
		t     time.Time
		tries int
	}
	var refused []refusal
	cn.mu.Lock()
	if !cn.away || last < cn.last {
		cn.away, cn.last = true, last
	}
	for s, r := range cn.inflight {
		if s > cn.last {
			refused = append(refused, refusal{r.intended, cn.tries[s]})
			delete(cn.inflight, s)
			delete(cn.tries, s)
		}
	}
	cn.mu.Unlock()
	for _, r := range refused {
		cn.cl.resend(r.t, r.tries, cn)
	}
}
