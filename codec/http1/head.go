package http1

import "github.com/mgw-project/mgw/codec"

// RequestHead is a parsed request line and header section. One RequestHead per
// connection is meant to be reused for every request on it: ParseHead overwrites it and
// reuses its Header slice. The strings (Method, Target, keys, values, Host) are carved out
// of one private copy of the head bytes made per request, so they never alias the
// caller's read buffer and stay valid after the next ParseHead; the Header slice itself
// does not (ToRequest copies it).
type RequestHead struct {
	Method string
	// Target is the request-target exactly as received: origin-, absolute- (http only) or
	// asterisk-form (OPTIONS only). ToRequest turns absolute-form into origin-form.
	Target string
	// Minor is the protocol minor version: 0 or 1 (HTTP/1.0 or HTTP/1.1).
	Minor int
	// Header holds every field in order, keys lowercased, values as received minus
	// leading and trailing whitespace. Repeated fields stay separate entries.
	Header codec.Header
	// ContentLength is the body length from Content-Length, or -1 when there is none. A
	// request with neither Content-Length nor chunked has no body (RFC 9112 6.3).
	ContentLength int64
	// Chunked is true when the body is framed by Transfer-Encoding: chunked.
	Chunked bool
	// KeepAlive says whether the connection may carry another request after this one:
	// HTTP/1.1 unless Connection: close; HTTP/1.0 only with Connection: keep-alive.
	KeepAlive bool
	// ExpectContinue is true for an HTTP/1.1 request with a body and Expect:
	// 100-continue; the server should answer Append100Continue before reading the body
	// (or answer the final status at once and close, RFC 9110 10.1.1).
	ExpectContinue bool
	// Host is the Host field, or the authority of an absolute-form target (which overrides
	// Host, RFC 9112 3.2.2). Empty when absent (only allowed in HTTP/1.0).
	Host string

	// scanned is where the search for the end of an incomplete head resumes, so a head
	// arriving a few bytes at a time is scanned once, not once per arrival.
	scanned int
}

// Reset forgets any partial progress. Call it before parsing from a buffer that does not
// start with the bytes given to the last incomplete ParseHead (ParseHead resets itself
// after a complete head or an error).
func (h *RequestHead) Reset() {
	hdr := h.Header[:0]
	*h = RequestHead{Header: hdr, ContentLength: -1}
}

// HasBody reports whether a body follows the head.
func (h *RequestHead) HasBody() bool { return h.Chunked || h.ContentLength > 0 }
