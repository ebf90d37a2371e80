// Package pipe carries a body between the reactor, which must never block, and a
// goroutine that may: a proxied request's body on its way to a backend, or a backend's
// streamed answer on its way to a client.
package pipe

import (
	"io"
	"sync"
)

// Pauser is the part of netpoll.Conn a Pipe steers: the connection the bytes come from.
type Pauser interface {
	PauseRead()
	ResumeRead()
}

// Pipe is a body in transit. The reactor side never blocks: Write copies what arrived
// and, once more than high bytes wait, pauses the source connection's reads; the reading
// side's Read takes bytes and resumes reads once the buffer is down to low. So a slow
// reader slows the sender through TCP, not by holding a reactor worker (an io.Pipe write
// blocked the worker until the reader read). A body that is already whole is buffered in
// one go and read without waiting at all.
//
// PauseRead and ResumeRead are called under mu, so the connection sees them in the order
// the pipe decided them: a resume decided after a pause can never reach the connection
// before it (that left a connection paused for good, its upload stalled).
type Pipe struct {
	c         Pauser
	high, low int

	mu      sync.Mutex
	buf     []byte
	off     int           // read position in buf
	werr    error         // writer finished: io.EOF, or why the body broke off
	rerr    error         // reader gave up: later Writes fail with it
	paused  bool          // this stream holds one PauseRead on c
	waiting chan struct{} // a Read waits for bytes or the end
}

func New(c Pauser, high int) *Pipe {
	return &Pipe{c: c, high: high, low: high / 4}
}

// Write is the reactor's side: it buffers p and never blocks. It fails once the reader
// gave up (the backend answered or the call ended), so the caller can drop the rest.
func (b *Pipe) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.rerr != nil {
		err := b.rerr
		b.mu.Unlock()
		return 0, err
	}
	if b.werr != nil {
		b.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if b.off > 0 && b.off >= len(b.buf)/2 {
		// Move the unread bytes down, so a reader that keeps a little behind does not
		// make the buffer grow with the whole body.
		n := copy(b.buf, b.buf[b.off:])
		b.buf, b.off = b.buf[:n], 0
	}
	b.buf = append(b.buf, p...)
	if !b.paused && len(b.buf)-b.off > b.high {
		b.paused = true
		b.c.PauseRead()
	}
	b.wakeLocked()
	b.mu.Unlock()
	return len(p), nil
}

// Finish ends the body: io.EOF when it is complete, another error when it broke off
// (the reader sees it after the bytes before it). The writer's side is done with the
// source connection: a pause this pipe holds is undone.
func (b *Pipe) Finish(err error) {
	if err == nil {
		err = io.EOF
	}
	b.mu.Lock()
	if b.werr == nil {
		b.werr = err
	}
	// Nothing more comes from the source: its reads are not this pipe's to hold (a
	// backend connection goes back to its pool, a client's reads its next request).
	b.resumeLocked()
	b.wakeLocked()
	b.mu.Unlock()
}

// LetGo undoes a pause this pipe holds on the source connection, as Finish does, without
// ending the body: the writer is done with the connection (it may go back to a pool)
// before the reader is told.
func (b *Pipe) LetGo() {
	b.mu.Lock()
	b.resumeLocked()
	b.mu.Unlock()
}

// Read is the upstream's side.
func (b *Pipe) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.rerr != nil {
			err := b.rerr
			b.mu.Unlock()
			return 0, err
		}
		if n := len(b.buf) - b.off; n > 0 {
			n = copy(p, b.buf[b.off:])
			b.off += n
			if len(b.buf)-b.off <= b.low {
				b.resumeLocked()
			}
			b.mu.Unlock()
			return n, nil
		}
		if b.werr != nil {
			err := b.werr
			b.mu.Unlock()
			return 0, err
		}
		if b.waiting == nil {
			b.waiting = make(chan struct{})
		}
		ch := b.waiting
		b.mu.Unlock()
		<-ch
	}
}

// Buffered is how many bytes wait for the reader.
func (b *Pipe) Buffered() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buf) - b.off
}

// Abandon is the reader giving up (like io.PipeReader.CloseWithError): buffered bytes
// are dropped, later Writes fail with err, and reads held for this stream resume so the
// reactor can read and drop the rest of the body.
func (b *Pipe) Abandon(err error) {
	b.mu.Lock()
	if b.rerr == nil {
		b.rerr = err
	}
	b.buf, b.off = nil, 0
	b.resumeLocked()
	b.wakeLocked()
	b.mu.Unlock()
}

// resumeLocked undoes the pause this pipe holds on the source, if it holds one.
func (b *Pipe) resumeLocked() {
	if b.paused {
		b.paused = false
		b.c.ResumeRead()
	}
}

func (b *Pipe) wakeLocked() {
	if b.waiting != nil {
		close(b.waiting)
		b.waiting = nil
	}
}
