package mmtp

import (
	"encoding/binary"
	"strconv"
)

// FrameLen validates the fixed header at the start of b, as much of it as b holds, and
// returns the length of the whole frame once the 16 fixed bytes are there (0 while fewer).
// Limits are enforced here, so a caller can refuse a frame whose declared header block or
// body is too large before buffering any of it. A wrong magic, version, type, flags or
// reserved byte fails as soon as that byte arrives.
func FrameLen(b []byte, lim *Limits) (int, error) {
	if err := checkPrefix(b); err != nil {
		return 0, err
	}
	if len(b) < HeaderSize {
		return 0, nil
	}
	l := lim.orDefault()
	t := Type(b[3])
	hl := int(binary.BigEndian.Uint16(b[6:8]))
	stream := binary.BigEndian.Uint32(b[8:12])
	bl := uint64(binary.BigEndian.Uint32(b[12:16]))

	if hl > l.MaxHeaderBytes {
		return 0, tooLarge(6, FieldHeaderLen, "header block of "+strconv.Itoa(hl)+" bytes exceeds the limit of "+strconv.Itoa(l.MaxHeaderBytes))
	}
	if t.wantsZeroStream() {
		if stream != 0 {
			return 0, protoErr(8, FieldStreamID, t.String()+" must carry stream_id 0, got "+strconv.FormatUint(uint64(stream), 10))
		}
	} else if stream == 0 && t != TypePushAck {
		// A PUSH_ACK names a push, and an ack for no unacknowledged push is ignored, not
		// an error (mmtp.md, Push delivery): stream 0 is such an ack.
		return 0, protoErr(8, FieldStreamID, t.String()+" must carry a non-zero stream_id")
	}
	if t == TypePing && bl > MaxPingBody { // mmtp.md bounds a PING's body, not a PONG's
		return 0, protoErr(12, FieldBodyLen, t.String()+" body of "+strconv.FormatUint(bl, 10)+" bytes exceeds 8")
	}
	if bl > uint64(l.MaxBodyBytes) {
		return 0, tooLarge(12, FieldBodyLen, "body of "+strconv.FormatUint(bl, 10)+" bytes exceeds the limit of "+strconv.Itoa(l.MaxBodyBytes))
	}
	return HeaderSize + hl + int(bl), nil
}

// checkPrefix checks bytes 0..5 of the fixed header, those of them that b holds.
func checkPrefix(b []byte) error {
	n := min(len(b), 6)
	for i := 0; i < n; i++ {
		c := b[i]
		switch i {
		case 0, 1:
			if c != Magic0 {
				return protoErr(i, FieldMagic, "want magic 0x4d4d (\"MM\"), byte is 0x"+hex2(c))
			}
		case 2:
			if c != Version {
				return protoErr(2, FieldVersion, "unsupported version 0x"+hex2(c)+", want 0x01")
			}
		case 3:
			if !Type(c).Known() {
				return protoErr(3, FieldType, "unknown frame type 0x"+hex2(c))
			}
		case 4:
			if c&^FlagGzip != 0 {
				return protoErr(4, FieldFlags, "undefined flag bits set: 0x"+hex2(c)+" (only bit 0, GZIP, is defined)")
			}
		case 5:
			if c != 0 {
				return protoErr(5, FieldReserved, "reserved byte must be 0, is 0x"+hex2(c))
			}
		}
	}
	return nil
}

// Parse decodes the frame at the start of b. It returns n == 0 and a nil error while b
// holds only part of a frame (call again with more bytes), n > 0 with the frame once b holds
// a whole one, or a *ProtocolError, reported as soon as the offending bytes are in b (the
// fixed header's bytes one by one, the limits with the fixed header, the header block once
// complete, before the body). The frame's Header and Body alias b. Parse checks every
// direction-neutral rule (fixed header, limits, per-type stream_id, PING body, header
// block); the caller adds CheckClientFrame or CheckServerFrame for its side. It never
// allocates on success or on an incomplete frame.
func Parse(b []byte, lim *Limits) (f Frame, n int, err error) {
	total, err := FrameLen(b, lim)
	if err != nil || total == 0 {
		return Frame{}, 0, err
	}
	hl := int(binary.BigEndian.Uint16(b[6:8]))
	if len(b) < HeaderSize+hl {
		return Frame{}, 0, nil
	}
	// The header block is checked as soon as it is all there, so a bad one fails before
	// a large body is buffered (re-checked per call while the body arrives: cheap next to
	// the read that brought the bytes).
	block := b[HeaderSize : HeaderSize+hl : HeaderSize+hl]
	maxEntries := DefaultMaxEntries
	if lim != nil && lim.MaxEntries > 0 {
		maxEntries = lim.MaxEntries
	}
	entries, err := checkBlock(block, maxEntries)
	if err != nil || len(b) < total {
		return Frame{}, 0, err
	}
	f = Frame{
		Type:     Type(b[3]),
		Flags:    b[4],
		StreamID: binary.BigEndian.Uint32(b[8:12]),
		Header:   block,
		Body:     b[HeaderSize+hl : total : total],
		Entries:  entries,
	}
	return f, total, nil
}

// checkBlock validates a header block and returns its entry count. Offsets in errors are
// frame offsets (block offset + 16).
func checkBlock(b []byte, maxEntries int) (int, error) {
	// Offsets of the first keys seen, for the repeated-key check without allocating.
	var seen [DefaultMaxEntries]uint16
	count := 0
	off := 0
	for off < len(b) {
		if count == maxEntries {
			return 0, tooLarge(HeaderSize+off, FieldHeaderBlock, "more than "+strconv.Itoa(maxEntries)+" header entries")
		}
		kl := int(b[off])
		if kl == 0 {
			return 0, protoErr(HeaderSize+off, FieldKey, "empty key")
		}
		if off+1+kl > len(b) {
			return 0, protoErr(HeaderSize+off, FieldKey, "key of "+strconv.Itoa(kl)+" bytes runs past the header block ("+strconv.Itoa(len(b))+" bytes)")
		}
		key := b[off+1 : off+1+kl]
		for i, c := range key {
			if !keyByte(c) {
				return 0, protoErr(HeaderSize+off+1+i, FieldKey, "invalid byte 0x"+hex2(c)+" in key (allowed: a-z 0-9 - _ .)")
			}
		}
		if off+3+kl > len(b) {
			return 0, protoErr(HeaderSize+off+1+kl, FieldValueLen, "value length of key "+strconv.Quote(string(key))+" runs past the header block")
		}
		vl := int(b[off+1+kl])<<8 | int(b[off+2+kl])
		if off+3+kl+vl > len(b) {
			return 0, protoErr(HeaderSize+off+1+kl, FieldValueLen, "value of "+strconv.Itoa(vl)+" bytes for key "+strconv.Quote(string(key))+" runs past the header block")
		}
		if repeated(b, seen[:min(count, len(seen))], count, off, key) {
			return 0, protoErr(HeaderSize+off, FieldKey, "repeated key "+strconv.Quote(string(key)))
		}
		if count < len(seen) {
			seen[count] = uint16(off)
		}
		count++
		off += 3 + kl + vl
	}
	return count, nil
}

// repeated reports whether key occurred before offset off. The first keys' offsets are in
// seen; past those (only with a MaxEntries above the default) the block is rescanned.
func repeated(b []byte, seen []uint16, count, off int, key []byte) bool {
	for _, s := range seen {
		if int(b[s]) == len(key) && string(b[int(s)+1:int(s)+1+len(key)]) == string(key) {
			return true
		}
	}
	if count <= len(seen) {
		return false
	}
	p := 0
	for i := 0; p < off; i++ {
		kl := int(b[p])
		if i >= len(seen) && kl == len(key) && string(b[p+1:p+1+kl]) == string(key) {
			return true
		}
		p += 3 + kl + (int(b[p+1+kl])<<8 | int(b[p+2+kl]))
	}
	return false
}

// keyByte reports whether c may appear in a key: lowercase ASCII letters, digits, - _ .
func keyByte(c byte) bool { return keyBytes[c] }

// keyBytes is the key alphabet as a table: the check runs for every key byte of every
// frame. Built once, never written after.
var keyBytes = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	return t
}()

// ValidKey reports whether k is a legal header key: 1..255 bytes of a-z 0-9 - _ .
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !keyByte(k[i]) {
			return false
		}
	}
	return true
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
