// Package mmtp implements the MMTP/1 wire format (docs/mmtp.md): parsing frames out of a
// byte slice, encoding frames into a caller's buffer, and turning a REQUEST into the
// protocol-neutral codec.Request. The package is pure: it opens no sockets and keeps no
// state between calls, so the reactor's read worker can call Parse on whatever bytes it
// holds.
package mmtp

import "strconv"

// Fixed-header layout (mmtp.md, "Frame").
const (
	HeaderSize = 16   // bytes in the fixed header
	Magic0     = 0x4D // 'M'
	Magic1     = 0x4D // 'M'
	Version    = 0x01

	// FlagGzip marks a gzip-compressed body; it is the only flag bit defined.
	FlagGzip uint8 = 0x01

	// MaxPingBody is the largest PING body a peer may send (a PONG echoes one).
	MaxPingBody = 8
	// MaxKeyLen and MaxValueLen are wire-format bounds of one header entry.
	MaxKeyLen   = 255
	MaxValueLen = 65535
	// MaxHeaderBlock is the wire-format bound of the header block (a 16-bit length).
	MaxHeaderBlock = 65535
)

// Type is the frame type code at byte 3.
type Type uint8

const (
	TypeHello    Type = 0x01
	TypeRequest  Type = 0x02
	TypeResponse Type = 0x03
	TypePush     Type = 0x04
	TypePushAck  Type = 0x05
	TypePing     Type = 0x06
	TypePong     Type = 0x07
	TypeGoAway   Type = 0x08
)

var typeNames = [...]string{"", "HELLO", "REQUEST", "RESPONSE", "PUSH", "PUSH_ACK", "PING", "PONG", "GOAWAY"}

// Known reports whether t is a type code MMTP/1 defines.
func (t Type) Known() bool { return t >= TypeHello && t <= TypeGoAway }

func (t Type) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return "TYPE(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// streamRule says what stream_id a type carries: zero for connection-level frames,
// non-zero for everything tied to a request or a push.
func (t Type) wantsZeroStream() bool {
	return t == TypePing || t == TypePong || t == TypeGoAway
}

// Frame is one parsed frame. Header and Body are views into the buffer given to Parse:
// they are valid only until the caller reuses or releases that buffer. Copy out (ToRequest,
// Clone) anything that must live longer. Parse has validated the header block, so the
// accessors below never fail and never allocate.
type Frame struct {
	Type     Type
	Flags    uint8
	StreamID uint32
	// Header is the raw header block (H bytes), already validated.
	Header []byte
	// Body is the raw body (B bytes), compressed when Gzip() is true.
	Body []byte
	// Entries is the number of entries in Header.
	Entries int
}

// Gzip reports whether the GZIP flag is set.
func (f *Frame) Gzip() bool { return f.Flags&FlagGzip != 0 }

// Len is the frame's size on the wire.
func (f *Frame) Len() int { return HeaderSize + len(f.Header) + len(f.Body) }

// Each calls fn for every header entry in wire order until fn returns false. k and v are
// views into the frame's buffer.
func (f *Frame) Each(fn func(k, v []byte) bool) {
	b := f.Header
	for len(b) > 0 {
		kl := int(b[0])
		k := b[1 : 1+kl]
		vl := int(b[1+kl])<<8 | int(b[2+kl])
		v := b[3+kl : 3+kl+vl]
		if !fn(k, v) {
			return
		}
		b = b[3+kl+vl:]
	}
}

// Get returns the value of key (keys on the wire are lowercase, so key should be too) and
// whether it is present. The value is a view into the frame's buffer.
func (f *Frame) Get(key string) ([]byte, bool) {
	_, v, ok := f.lookup(key)
	return v, ok
}

// lookup also returns the frame offset of the entry's key-length byte, for error messages.
func (f *Frame) lookup(key string) (int, []byte, bool) {
	b := f.Header
	off := 0
	for off < len(b) {
		kl := int(b[off])
		k := b[off+1 : off+1+kl]
		vl := int(b[off+1+kl])<<8 | int(b[off+2+kl])
		if string(k) == key {
			return HeaderSize + off, b[off+3+kl : off+3+kl+vl], true
		}
		off += 3 + kl + vl
	}
	return 0, nil, false
}

// Clone returns a copy of f that owns its memory (one allocation).
func (f *Frame) Clone() Frame {
	buf := make([]byte, len(f.Header)+len(f.Body))
	n := copy(buf, f.Header)
	copy(buf[n:], f.Body)
	c := *f
	c.Header = buf[:n:n]
	c.Body = buf[n:]
	return c
}
