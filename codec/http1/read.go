package http1

import (
	"bufio"
	"errors"
	"io"
)

// ReadResponseHead reads one response head from br into h, for a connection read
// synchronously. A head longer than br's buffer is gathered outside it (up to the head
// limit), so the buffer can stay small. io.EOF: the stream ended before the first byte;
// io.ErrUnexpectedEOF: inside the head.
func ReadResponseHead(br *bufio.Reader, lim *Limits, h *ResponseHead) error {
	var acc []byte // head bytes already taken out of br
	need := 1
	for {
		if _, err := br.Peek(need); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && (len(acc) > 0 || br.Buffered() > 0) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		win, _ := br.Peek(br.Buffered())
		b := win
		if acc != nil {
			b = append(acc, win...)
		}
		n, err := ParseResponseHead(b, lim, h)
		switch {
		case err != nil:
			return err
		case n > 0:
			_, err = br.Discard(n - len(acc))
			return err
		case len(win) == br.Size():
			acc = append(acc[:0:0], b...)
			br.Discard(len(win))
			need = 1
		default:
			need = len(win) + 1
		}
	}
}

// BodyReader reads a decoded message body from a buffered connection that is read
// synchronously (the gateway's side of a backend connection). It consumes exactly the
// body's bytes, so the next message on the connection starts where it stops.
type BodyReader struct {
	br *bufio.Reader
	d  *BodyDecoder
}

// NewBodyReader reads the body d was Reset for from br.
func NewBodyReader(br *bufio.Reader, d *BodyDecoder) *BodyReader {
	return &BodyReader{br: br, d: d}
}

// Read returns decoded body bytes; io.EOF once the body is complete. A stream that ends
// early is io.ErrUnexpectedEOF; bad framing is an *Error.
func (r *BodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	need := 1
	for {
		if r.d.Done() {
			return 0, io.EOF
		}
		if _, err := r.br.Peek(need); err != nil {
			switch {
			case err == io.EOF && r.d.UntilClose() && r.br.Buffered() == 0:
				r.d.Finish()
				return 0, io.EOF
			case err == io.EOF:
				return 0, io.ErrUnexpectedEOF
			case errors.Is(err, bufio.ErrBufferFull):
				return 0, errf(502, "a chunk or trailer line longer than the %d byte read buffer", r.br.Size())
			}
			return 0, err
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		data, consumed, done, err := r.d.DecodeUpTo(buf, len(p))
		if err != nil {
			return 0, err
		}
		n := copy(p, data)
		r.br.Discard(consumed)
		if n > 0 {
			return n, nil
		}
		if done {
			return 0, io.EOF
		}
		need = len(buf) - consumed + 1 // an incomplete line: wait for more of it
	}
}
