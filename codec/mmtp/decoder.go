package mmtp

import "io"

// readChunk is the read size of ReadFrame, and the largest buffer it keeps between frames.
const readChunk = 4 << 10

// Decoder splits a byte stream into frames, for peers that own a stream (the client
// library, tests, fuzzing); the gateway calls Parse on its reactor's buffers instead.
// Feed it with Write and drain it with Next, or let ReadFrame do both from an io.Reader.
// A Decoder is not safe for concurrent use. A Frame it returns aliases its buffer and is
// valid only until the next call of any of its methods.
//
// Memory: in Write/Next use the buffer is dropped whenever every byte has been consumed,
// so an idle stream holds nothing; ReadFrame keeps at most a 4 KiB read buffer, since its
// caller is a goroutine blocked in Read anyway. A frame larger than that grows the buffer
// to the frame's size (bounded by the Limits), released once the frame is consumed.
type Decoder struct {
	lim     Limits
	buf     []byte
	off     int // start of the unconsumed bytes
	reading bool
	err     error
}

// NewDecoder returns a Decoder enforcing lim (nil: DefaultLimits).
func NewDecoder(lim *Limits) *Decoder {
	return &Decoder{lim: lim.orDefault()}
}

// Write appends stream bytes. It never fails; errors surface from Next.
func (d *Decoder) Write(p []byte) (int, error) {
	d.compact()
	d.buf = append(d.buf, p...)
	return len(p), nil
}

// Buffered is the number of bytes received but not yet returned as frames.
func (d *Decoder) Buffered() int { return len(d.buf) - d.off }

// Next returns the next complete frame from the bytes written so far: ok is false when
// more bytes are needed. A protocol error is sticky: the stream cannot be resynchronised,
// so every later call returns it too.
func (d *Decoder) Next() (f Frame, ok bool, err error) {
	if d.err != nil {
		return Frame{}, false, d.err
	}
	if d.off == len(d.buf) {
		d.compact() // cheap when empty; a remainder is moved only before reading more
	}
	f, n, err := Parse(d.buf[d.off:], &d.lim)
	if err != nil {
		d.err = err
		return Frame{}, false, err
	}
	if n == 0 {
		return Frame{}, false, nil
	}
	d.off += n
	return f, true, nil
}

// ReadFrame returns the next frame, reading from r as needed. At the end of r it returns
// io.EOF between frames and io.ErrUnexpectedEOF inside one; other read errors pass through.
func (d *Decoder) ReadFrame(r io.Reader) (Frame, error) {
	d.reading = true
	for {
		f, ok, err := d.Next()
		if err != nil || ok {
			return f, err
		}
		d.compact()
		// Room for the rest of this frame when its length is known, else a chunk.
		need := readChunk
		if total, _ := FrameLen(d.buf[d.off:], &d.lim); total > d.Buffered() {
			need = max(need, total-d.Buffered())
		}
		if cap(d.buf)-len(d.buf) < need {
			nb := make([]byte, len(d.buf), len(d.buf)+need)
			copy(nb, d.buf)
			d.buf = nb
		}
		n, err := r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+n]
		if n > 0 {
			continue
		}
		if err == io.EOF && d.Buffered() > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return Frame{}, err
		}
	}
}

// compact drops consumed bytes: the whole buffer when nothing is left (kept when small
// and ReadFrame is in use), else by moving the remainder to the front.
func (d *Decoder) compact() {
	if d.off == 0 {
		return
	}
	if d.off == len(d.buf) {
		if d.reading && cap(d.buf) <= readChunk {
			d.buf = d.buf[:0]
		} else {
			d.buf = nil
		}
		d.off = 0
		return
	}
	n := copy(d.buf, d.buf[d.off:])
	d.buf = d.buf[:n]
	d.off = 0
}
