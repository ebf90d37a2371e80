package http1

import (
	"errors"
	"fmt"
)

// Error is a request the gateway must refuse. Status is the HTTP status to answer with
// (400, 413, 414, 431, 501 or 505); Reason names the offending field, byte or offset and is
// safe to send back to the client. After an Error the connection must be closed: the
// parser no longer knows where the next request would start.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("http1: %d %s", e.Status, e.Reason) }

// AsError returns the *Error inside err, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func errf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// quoteByte renders a byte for a Reason without echoing control characters raw.
func quoteByte(c byte) string { return fmt.Sprintf("%q", rune(c)) }
