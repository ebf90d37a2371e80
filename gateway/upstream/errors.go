package upstream

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mgw-project/mgw/codec"
)

// Kind classifies why a call to a cluster failed. The router decides fallback on it (and
// on Error.Sent), the gateway turns it into the answer the client sees.
type Kind uint8

const (
	// NoHealthyHost: every host is unhealthy (active checks) or ejected (passive). 503.
	NoHealthyHost Kind = iota + 1
	// ConnectFailed: no connection could be made (refused, unreachable, connect timeout);
	// nothing was sent. 503 unavailable: a backend nobody can connect to is down, which is
	// mmtp.md's "no healthy backend" whether or not a health check has noticed yet.
	ConnectFailed
	// Timeout: the request timeout passed before the backend answered. 504. Sent is true
	// unless the deadline passed while still waiting for a connection.
	Timeout
	// Failed: the connection broke mid-exchange, or the response was malformed or over the
	// size limit. 502. Sent is true.
	Failed
	// Overloaded: the cluster's MaxInFlight cap is full on this instance. 503, not sent.
	Overloaded
	// Invalid: the request cannot be expressed as HTTP/1.1 (a header name or value with
	// bytes HTTP forbids, a malformed target). 400; sending it elsewhere would not help.
	Invalid
	// Canceled: the caller's context was canceled (the client went away). Nobody will see
	// the answer; it is not counted against the host.
	Canceled
)

var kindNames = [...]string{
	NoHealthyHost: "no_healthy_host",
	ConnectFailed: "connect_failed",
	Timeout:       "timeout",
	Failed:        "failed",
	Overloaded:    "overloaded",
	Invalid:       "invalid",
	Canceled:      "canceled",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is every error Call and Forward return. Status and Code are what the gateway
// answers the client with (mmtp.md "Errors") when no fallback succeeds.
type Error struct {
	Kind   Kind
	Status int
	Code   string
	// Sent is true when the request may have reached the backend (a connection was
	// obtained and writing began), so resending it could repeat a non-idempotent call.
	Sent bool
	// Cluster and Host (as configured) say where it failed; Host is "" for NoHealthyHost
	// and Overloaded.
	Cluster string
	Host    string
	Err     error
}

func (e *Error) Error() string {
	where := "cluster " + quote(e.Cluster)
	if e.Host != "" {
		where += " host " + quote(e.Host)
	}
	if e.Err != nil {
		return fmt.Sprintf("upstream %s: %s: %v", where, e.Kind, e.Err)
	}
	return fmt.Sprintf("upstream %s: %s", where, e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// Retriable reports whether the router may try a fallback cluster: the request provably
// did not reach a backend. Invalid and Canceled are never retriable (another cluster
// would fail the same way, or nobody is waiting).
func (e *Error) Retriable() bool {
	return !e.Sent && e.Kind != Invalid && e.Kind != Canceled
}

// Response returns the gateway-made answer for this error.
func (e *Error) Response() *codec.Response {
	return codec.ErrorResponse(e.Status, e.Code, e.reason())
}

func (e *Error) reason() string {
	switch e.Kind {
	case NoHealthyHost:
		return "no healthy backend for cluster " + e.Cluster
	case ConnectFailed:
		// A 503 whose body said "backend failed" read as a 502's.
		return "no backend of cluster " + e.Cluster + " could be reached"
	case Overloaded:
		return "cluster " + e.Cluster + " is at its in-flight limit"
	case Timeout:
		return "backend did not answer in time"
	case Invalid:
		if e.Err != nil {
			return e.Err.Error()
		}
		return "request cannot be forwarded"
	}
	return "backend failed"
}

func newError(kind Kind, cluster, host string, sent bool, err error) *Error {
	e := &Error{Kind: kind, Cluster: cluster, Host: host, Sent: sent, Err: err}
	switch kind {
	case NoHealthyHost, Overloaded, ConnectFailed:
		e.Status, e.Code = http.StatusServiceUnavailable, codec.ErrUnavailable
	case Timeout:
		e.Status, e.Code = http.StatusGatewayTimeout, codec.ErrUpstreamTimeout
	case Invalid:
		e.Status, e.Code = http.StatusBadRequest, codec.ErrBadRequest
	case Canceled:
		// 499 is nginx's "client closed request": nobody reads it, logs do.
		e.Status, e.Code = 499, codec.ErrUpstream
	default:
		e.Status, e.Code = http.StatusBadGateway, codec.ErrUpstream
	}
	return e
}

// AsError returns err as an *Error when it is one (possibly wrapped).
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// errTooLarge is the cause of a Failed error for a response body over the limit.
var errTooLarge = errors.New("response body over the size limit")
