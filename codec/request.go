// Package codec holds the protocol-neutral request and response that every wire format
// (codec/mmtp, codec/http1) produces and consumes. Filters and the router see only these
// types; adding a protocol means adding a codec that fills them, nothing else.
package codec

import (
	"net/netip"
	"strings"
	"time"
)

// Protocol names the wire format a request arrived in.
type Protocol uint8

const (
	MMTP Protocol = iota + 1
	HTTP1
)

func (p Protocol) String() string {
	switch p {
	case MMTP:
		return "mmtp"
	case HTTP1:
		return "http1"
	}
	return "unknown"
}

// Field is one header entry. Keys of a Header built by a codec are lowercase.
type Field struct {
	Key   string
	Value string
}

// Header is an ordered list of fields. It is a slice rather than a map because requests
// carry a handful of headers: a linear scan beats hashing and costs one allocation.
type Header []Field

// Get returns the value of key (case-insensitive) and whether it was present.
func (h Header) Get(key string) (string, bool) {
	for i := range h {
		if strings.EqualFold(h[i].Key, key) {
			return h[i].Value, true
		}
	}
	return "", false
}

// Value returns the value of key, or "" when absent.
func (h Header) Value(key string) string {
	v, _ := h.Get(key)
	return v
}

// Set replaces the value of key, or appends it.
func (h *Header) Set(key, value string) {
	for i := range *h {
		if strings.EqualFold((*h)[i].Key, key) {
			(*h)[i].Value = value
			return
		}
	}
	*h = append(*h, Field{Key: key, Value: value})
}

// Del removes every field named key.
func (h *Header) Del(key string) {
	out := (*h)[:0]
	for _, f := range *h {
		if !strings.EqualFold(f.Key, key) {
			out = append(out, f)
		}
	}
	*h = out
}

// ConnInfo is the identity of the downstream connection a request came on. For a listener
// behind an access layer with PROXY protocol, ClientAddr is the address from that header.
type ConnInfo struct {
	Listener   string
	ClientAddr netip.AddrPort
	// AppID and DeviceID are bound by a successful MMTP HELLO; empty otherwise.
	AppID    string
	DeviceID string
}

// Request is one API call, whatever protocol carried it. A Request owns its memory: the
// codec copies out of the read buffer, so a Request may outlive the read event that
// produced it (MMTP requests run as their own pool tasks).
type Request struct {
	Protocol Protocol
	// Operation is the API name routing keys on (MMTP `operation-type`, HTTP
	// `POST /api/<op>` or the `Operation-Type` header). Empty for a plain HTTP request that
	// only a path-prefix route can take.
	Operation string
	// StreamID is the MMTP stream id; 0 for HTTP.
	StreamID uint32
	// Header holds the request headers with lowercase keys (MMTP header block, HTTP header
	// fields; hop-by-hop fields are kept here and dropped by the upstream side).
	Header Header
	// Body is the whole body, when the codec buffered it. For a streamed HTTP body it is nil
	// and BodyStream is set instead.
	Body []byte
	// Gzip is true when the body is gzip-compressed on the wire (MMTP GZIP flag, HTTP
	// Content-Encoding: gzip).
	Gzip bool

	// HTTP only: the method, the request-target in origin-form (an absolute-form target is
	// reduced to its path and query, its authority going to the host field, RFC 9112
	// 3.2.2), and the protocol minor version.
	Method string
	Target string
	Minor  int

	Conn ConnInfo
	// Received is when the gateway saw the request's bytes ready; Started, when it began
	// to serve it (admitted, past any queue). The gap is the request's wait.
	Received time.Time
	Started  time.Time
}

// App returns the calling app: the request's own `app-id` header, else the connection's.
func (r *Request) App() string {
	if v := r.Header.Value("app-id"); v != "" {
		return v
	}
	return r.Conn.AppID
}

// Device returns the calling device: the request's own `device-id`, else the connection's.
func (r *Request) Device() string {
	if v := r.Header.Value("device-id"); v != "" {
		return v
	}
	return r.Conn.DeviceID
}

// User returns the `user-id` header, if any.
func (r *Request) User() string { return r.Header.Value("user-id") }

// Response is the answer to a Request, produced by the upstream side or by a filter or the
// gateway itself when it answers early.
type Response struct {
	Status int
	// Header holds response headers with lowercase keys, hop-by-hop fields already dropped.
	Header Header
	Body   []byte
	// Gzip is true when Body is gzip-compressed (MMTP GZIP flag; HTTP Content-Encoding).
	Gzip bool
	// Arrived is when a backend's answer was whole; zero for an answer the gateway made.
	// It spares the clock a read per request (issue 11).
	Arrived time.Time

	pooled *[]byte // Body's buffer, from PooledBody; see ReleaseBody
}

// Error codes carried in the `error` header of a gateway-made response (mmtp.md, Errors).
const (
	ErrBadRequest      = "bad_request"
	ErrUnauthorized    = "unauthorized"
	ErrForbidden       = "forbidden"
	ErrNoRoute         = "no_route"
	ErrTooLarge        = "too_large"
	ErrRateLimited     = "rate_limited"
	ErrUpstream        = "upstream_error"
	ErrUnavailable     = "unavailable"
	ErrUpstreamTimeout = "upstream_timeout"
	ErrInternal        = "internal" // 500: the gateway failed (a request task panicked)
)

// ErrorResponse builds a gateway-made error answer: the status, the `error` header with
// code, and a short human-readable reason as the body.
func ErrorResponse(status int, code, reason string) *Response {
	return &Response{
		Status: status,
		Header: Header{{Key: "error", Value: code}, {Key: "content-type", Value: "text/plain; charset=utf-8"}},
		Body:   []byte(reason),
	}
}
