package mmtp

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/mgw-project/mgw/codec"
)

// The encoder never produces a frame that Parse would reject under the wire format's own
// bounds, whatever it is given. Its policy for header entries, so a caller never has to
// pre-check a backend's headers:
//   - keys are lowercased (ASCII); a key that is still not 1..255 bytes of a-z 0-9 - _ .
//     is dropped (e.g. an HTTP header with a character MMTP keys do not allow);
//   - a key already written earlier in the frame is dropped (first one wins);
//   - an entry whose value exceeds 65535 bytes, or that would push the header block past its
//     cap (or past the entry cap), is dropped.
// Use CheckHeader to learn beforehand whether anything would be dropped.

// AppendFrame appends one frame to dst and returns the extended slice. Only the GZIP flag
// bit is kept, and a PING/PONG body is cut to 8 bytes. The header block is capped only by
// the wire format (65535 bytes); AppendResponse and AppendPush cap it at the default
// limits a client enforces. It does not allocate beyond growing dst. It panics if body is
// longer than 2^32-1 bytes, which no Limits admit.
func AppendFrame(dst []byte, typ Type, flags uint8, stream uint32, hdr codec.Header, body []byte) []byte {
	w := beginFrame(dst, typ, flags, stream, MaxHeaderBlock, math.MaxInt)
	w.fields(hdr)
	return w.finish(body)
}

// AppendRequest appends a REQUEST carrying `operation-type: op` first, then hdr (an
// `operation-type` in hdr is dropped as a repeat).
func AppendRequest(dst []byte, stream uint32, op string, hdr codec.Header, body []byte, gzip bool) []byte {
	w := beginFrame(dst, TypeRequest, gzipFlag(gzip), stream, MaxHeaderBlock, math.MaxInt)
	w.str("operation-type", op)
	w.fields(hdr)
	return w.finish(body)
}

// AppendResponse appends the RESPONSE to stream: `status` first (r.Status as 3 digits; a
// status outside 100..999 is sent as 500), then r.Header (any `status` there is dropped as
// a repeat), the GZIP flag when r.Gzip, and r.Body. The header block is capped at the
// default client limits (16 KiB, 64 entries) so a default client never refuses it; the
// gateway is expected to drop `content-encoding` itself when it sets r.Gzip.
func AppendResponse(dst []byte, stream uint32, r *codec.Response) []byte {
	w := beginFrame(dst, TypeResponse, gzipFlag(r.Gzip), stream, DefaultMaxHeaderBytes, DefaultMaxEntries)
	st := r.Status
	if st < 100 || st > 999 {
		st = 500
	}
	if w.begin("status") {
		w.dst = strconv.AppendUint(w.dst, uint64(st), 10)
		w.end()
	}
	w.fields(r.Header)
	return w.finish(r.Body)
}

// AppendPush appends a PUSH on stream (non-zero, chosen by the gateway) with `topic` first.
// Header caps as for AppendResponse.
func AppendPush(dst []byte, stream uint32, topic string, hdr codec.Header, body []byte, gzip bool) []byte {
	w := beginFrame(dst, TypePush, gzipFlag(gzip), stream, DefaultMaxHeaderBytes, DefaultMaxEntries)
	w.str("topic", topic)
	w.fields(hdr)
	return w.finish(body)
}

// AppendPushAck appends the PUSH_ACK for the push on stream.
func AppendPushAck(dst []byte, stream uint32) []byte {
	w := beginFrame(dst, TypePushAck, 0, stream, 0, 0)
	return w.finish(nil)
}

// AppendGoAway appends a GOAWAY with `last-stream-id` and `reason`.
func AppendGoAway(dst []byte, lastStream uint32, reason string) []byte {
	w := beginFrame(dst, TypeGoAway, 0, 0, MaxHeaderBlock, math.MaxInt)
	if w.begin("last-stream-id") {
		w.dst = strconv.AppendUint(w.dst, uint64(lastStream), 10)
		w.end()
	}
	w.str("reason", reason)
	return w.finish(nil)
}

// AppendPing appends a PING whose body is payload, cut to 8 bytes.
func AppendPing(dst []byte, payload []byte) []byte {
	w := beginFrame(dst, TypePing, 0, 0, 0, 0)
	return w.finish(payload)
}

// AppendPong appends the PONG answering a PING with this payload (at most 8 bytes, as
// the PING's was).
func AppendPong(dst []byte, payload []byte) []byte {
	w := beginFrame(dst, TypePong, 0, 0, 0, 0)
	return w.finish(payload)
}

// CheckHeader reports the first entry of hdr that the encoder would drop under the wire
// format's bounds, or nil. Keys differing only in case count as repeats.
func CheckHeader(hdr codec.Header) error {
	w := beginFrame(make([]byte, 0, 256), TypeRequest, 0, 1, MaxHeaderBlock, math.MaxInt)
	for i, f := range hdr {
		if !w.str(f.Key, f.Value) {
			return &ProtocolError{Offset: i, Field: FieldKey, Reason: "header entry " + strconv.Itoa(i) + " (" + strconv.Quote(f.Key) + ") would be dropped: invalid or repeated key, value over 65535 bytes, or block over 65535 bytes"}
		}
	}
	return nil
}

func gzipFlag(gz bool) uint8 {
	if gz {
		return FlagGzip
	}
	return 0
}

// frameWriter builds one frame in place: fixed header reserved, entries appended, lengths
// patched at the end. An entry that breaks a rule is rolled back, never half-written.
type frameWriter struct {
	dst        []byte
	start      int // offset of the frame in dst
	entry      int // offset of the entry being written
	valStart   int // offset of its value
	typ        Type
	entries    int
	maxBlock   int
	maxEntries int
}

func beginFrame(dst []byte, typ Type, flags uint8, stream uint32, maxBlock, maxEntries int) frameWriter {
	start := len(dst)
	dst = append(dst, Magic0, Magic1, Version, byte(typ), flags&FlagGzip, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, stream)
	dst = append(dst, 0, 0, 0, 0)
	return frameWriter{dst: dst, start: start, typ: typ, maxBlock: maxBlock, maxEntries: maxEntries}
}

func (w *frameWriter) fields(hdr codec.Header) {
	for i := range hdr {
		w.str(hdr[i].Key, hdr[i].Value)
	}
}

func (w *frameWriter) str(k, v string) bool {
	if !w.begin(k) {
		return false
	}
	w.dst = append(w.dst, v...)
	return w.end()
}

// begin writes the lowercased key and a placeholder value length; false (and nothing
// written) when the key is invalid, repeated, or the entry cap is reached.
func (w *frameWriter) begin(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLen || w.entries >= w.maxEntries {
		return false
	}
	w.entry = len(w.dst)
	w.dst = append(w.dst, byte(len(k)))
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !keyByte(c) {
			w.dst = w.dst[:w.entry]
			return false
		}
		w.dst = append(w.dst, c)
	}
	if w.seen(w.dst[w.entry+1:]) {
		w.dst = w.dst[:w.entry]
		return false
	}
	w.dst = append(w.dst, 0, 0)
	w.valStart = len(w.dst)
	return true
}

// seen reports whether key was already written in this frame's header block.
func (w *frameWriter) seen(key []byte) bool {
	b := w.dst[w.start+HeaderSize : w.entry]
	for p := 0; p < len(b); {
		kl := int(b[p])
		if kl == len(key) && string(b[p+1:p+1+kl]) == string(key) {
			return true
		}
		p += 3 + kl + (int(b[p+1+kl])<<8 | int(b[p+2+kl]))
	}
	return false
}

// end patches the value length, or rolls the entry back when it breaks a size cap.
func (w *frameWriter) end() bool {
	vl := len(w.dst) - w.valStart
	if vl > MaxValueLen || len(w.dst)-w.start-HeaderSize > w.maxBlock {
		w.dst = w.dst[:w.entry]
		return false
	}
	binary.BigEndian.PutUint16(w.dst[w.valStart-2:], uint16(vl))
	w.entries++
	return true
}

func (w *frameWriter) finish(body []byte) []byte {
	if w.typ == TypePing && len(body) > MaxPingBody {
		body = body[:MaxPingBody]
	}
	if uint64(len(body)) > math.MaxUint32 {
		panic("mmtp: body of " + strconv.Itoa(len(body)) + " bytes cannot be framed")
	}
	h := w.dst[w.start:]
	binary.BigEndian.PutUint16(h[6:8], uint16(len(w.dst)-w.start-HeaderSize))
	binary.BigEndian.PutUint32(h[12:16], uint32(len(body)))
	return append(w.dst, body...)
}
