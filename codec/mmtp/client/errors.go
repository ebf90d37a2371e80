package client

import (
	"errors"
	"strconv"
)

// ErrClosed is returned by calls on a client that Close has closed.
var ErrClosed = errors.New("mmtp client: closed")

// GoAwayError fails a call the gateway will not answer because it sent GOAWAY: the call was
// refused before it was sent, or its stream id is above the GOAWAY's last-stream-id. The
// gateway did not process it, so it is safe to retry on a new connection.
type GoAwayError struct {
	LastStreamID uint32
	Reason       string
}

func (e *GoAwayError) Error() string {
	return "mmtp client: gateway sent GOAWAY (reason " + strconv.Quote(e.Reason) + ", last-stream-id " +
		strconv.FormatUint(uint64(e.LastStreamID), 10) + "): call not processed, retry on a new connection"
}

// Retryable reports true: the gateway did not process the call.
func (e *GoAwayError) Retryable() bool { return true }

// ConnError fails calls in flight when the connection breaks (read error, protocol error
// from the gateway, write failure). Whether the gateway processed such a call is unknown,
// except for the call whose own frame could not be written (Unsent).
type ConnError struct {
	Op  string // "read", "write", "protocol"
	Err error
	// Unsent: this call's frame did not wholly reach the gateway, which therefore did not
	// process it.
	Unsent bool
}

func (e *ConnError) Error() string {
	s := "mmtp client: connection " + e.Op + ": " + e.Err.Error()
	if e.Unsent {
		s += " (call not sent, retry on a new connection)"
	}
	return s
}
func (e *ConnError) Unwrap() error { return e.Err }

// Retryable reports whether the gateway surely did not process the call (Unsent).
func (e *ConnError) Retryable() bool { return e.Unsent }

// HelloError is returned by Dial when the gateway answers HELLO with a status other than 200.
type HelloError struct {
	Status int
	Code   string // the `error` header
	Reason string // the body
}

func (e *HelloError) Error() string {
	return "mmtp client: HELLO answered " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Reason
}
