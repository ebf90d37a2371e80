package http1

import (
	"strings"

	"github.com/mgw-project/mgw/codec"
)

// ToRequest builds the protocol-neutral request for a parsed head. It copies h.Header (h
// is reused for the next request; the strings themselves are already private to this
// head) and retains body as is: body must be memory the request may own, never a slice
// of the reactor's read buffer (nil for an empty or streamed body). Received is left for
// the caller to stamp.
//
// Operation is <op> for POST /api/<op> (op non-empty and without '/', query ignored),
// else the Operation-Type field, else "".
//
// The request is the one a proxy forwards (RFC 9112 3.2.2): Target is in origin-form (an
// absolute-form target keeps only its path and query) and the host field holds h.Host,
// so an absolute-form target's authority replaces whatever Host the client sent.
func ToRequest(h *RequestHead, body []byte, conn codec.ConnInfo) *codec.Request {
	// The request and the copy of a head's usual few fields (and the host field it may
	// gain) are one allocation.
	rf := &requestFields{}
	var hdr codec.Header
	if n := len(h.Header); n < len(rf.fields) {
		hdr = rf.fields[: n : n+1] // the capacity the make below gives: appends behave alike
	} else {
		hdr = make(codec.Header, len(h.Header), len(h.Header)+1)
	}
	copy(hdr, h.Header)
	target := h.Target
	if target != "" && target[0] != '/' && target != "*" {
		target = originForm(h.Method, target)
		hdr.Set("host", h.Host)
	}
	r := &rf.req
	*r = codec.Request{
		Protocol: codec.HTTP1,
		Header:   hdr,
		Body:     body,
		Method:   h.Method,
		Target:   target,
		Minor:    h.Minor,
		Conn:     conn,
	}
	r.Operation = Operation(h)
	if ce, ok := hdr.Get("content-encoding"); ok && equalFoldASCII(trimOWSString(ce), "gzip") {
		r.Gzip = true
	}
	return r
}

// requestFields is a request with room for its fields.
type requestFields struct {
	req    codec.Request
	fields [8]codec.Field
}

// apiOperation returns op for "POST /api/op" (also in absolute-form), else "".
func apiOperation(method, target string) string {
	if method != "POST" {
		return ""
	}
	path := target
	if path != "" && path[0] != '/' {
		if _, rest, ok := strings.Cut(path, "://"); ok {
			i := strings.IndexAny(rest, "/?")
			if i < 0 || rest[i] != '/' {
				return ""
			}
			path = rest[i:]
		}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	op, ok := strings.CutPrefix(path, "/api/")
	if !ok || op == "" || strings.IndexByte(op, '/') >= 0 {
		return ""
	}
	return op
}
