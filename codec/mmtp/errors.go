package mmtp

import (
	"errors"
	"strconv"
)

// GOAWAY reasons (mmtp.md, "Errors" and "Limits").
const (
	ReasonProtocolError = "protocol_error"  // a rule of the wire format was broken
	ReasonFrameTooLarge = "frame_too_large" // header block, body or entry count over the limits
	ReasonIdle          = "idle"            // no complete frame for the idle time
	ReasonTimeout       = "timeout"         // a frame begun but not completed in time
	// ReasonShutdown is not named by mmtp.md; it is what a draining gateway sends. Clients
	// treat every reason alike: finish what is answered, then reconnect.
	ReasonShutdown = "shutdown"
)

// Field names carried in ProtocolError.Field.
const (
	FieldMagic       = "magic"
	FieldVersion     = "version"
	FieldType        = "type"
	FieldFlags       = "flags"
	FieldReserved    = "reserved"
	FieldHeaderLen   = "header_len"
	FieldStreamID    = "stream_id"
	FieldBodyLen     = "body_len"
	FieldHeaderBlock = "header_block"
	FieldKey         = "key"
	FieldValueLen    = "value_len"
	FieldHeader      = "header" // a required header missing or malformed (CheckServerFrame)
)

// ProtocolError is a connection-level violation of MMTP. Offset is the byte offset from the
// first byte of the offending frame; Field names the fixed-header field or header-block
// part at that offset. TooLarge marks a limit violation, answered with GOAWAY
// frame_too_large instead of protocol_error.
type ProtocolError struct {
	Offset   int
	Field    string
	Reason   string
	TooLarge bool
}

func (e *ProtocolError) Error() string {
	return "mmtp: " + e.GoAwayReason() + " at byte " + strconv.Itoa(e.Offset) + " (" + e.Field + "): " + e.Reason
}

// GoAwayReason is the `reason` of the GOAWAY that answers this error.
func (e *ProtocolError) GoAwayReason() string {
	if e.TooLarge {
		return ReasonFrameTooLarge
	}
	return ReasonProtocolError
}

// GoAwayReason maps any error from Parse, FrameLen, Decoder or the Check functions to a
// GOAWAY reason: frame_too_large for limit violations, protocol_error otherwise.
func GoAwayReason(err error) string {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.GoAwayReason()
	}
	return ReasonProtocolError
}

func protoErr(off int, field, reason string) *ProtocolError {
	return &ProtocolError{Offset: off, Field: field, Reason: reason}
}

func tooLarge(off int, field, reason string) *ProtocolError {
	return &ProtocolError{Offset: off, Field: field, Reason: reason, TooLarge: true}
}
