package upstream

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// headPool recycles request-head buffers; a head is written and done with in one call.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledHead keeps one huge head from pinning its buffer in the pool.
const maxPooledHead = 64 << 10

// appendCallHead appends the request line and fields of an API call, as Call documents,
// except Host, which is appended by appendHostAndEnd once the host is known. It fails
// on a field HTTP cannot carry, naming it.
func appendCallHead(dst []byte, pathPrefix string, req *codec.Request) ([]byte, error) {
	if !http1.ValidFieldValue(req.Operation) {
		return dst, fmt.Errorf("operation type %q holds a control byte", req.Operation)
	}
	dst = append(dst, "POST "...)
	dst = append(dst, pathPrefix...)
	dst = append(dst, '/')
	dst = append(dst, url.PathEscape(req.Operation)...)
	dst = append(dst, " HTTP/1.1\r\n"...)

	fromHTTP := req.Protocol == codec.HTTP1
	dst, prior, err := appendFields(dst, req.Header, func(k string) bool { return skipAPIHeader(k, req.Gzip) }, fromHTTP)
	if err != nil {
		return dst, err
	}
	// A call from the HTTP listener is forwarded HTTP and gets our Via entry; one from
	// MMTP is the gateway's own request, whose Via fields pass as sent.
	self := ""
	if fromHTTP {
		self = viaEntry(req.Minor)
	}
	dst = appendVia(dst, prior.via, self)
	dst = http1.AppendField(dst, "operation-type", req.Operation)
	if req.Gzip {
		dst = append(dst, "Content-Encoding: gzip\r\n"...)
	}
	dst = appendForwardedFor(dst, prior.xff, req.Conn.ClientAddr)
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(req.Body)), 10)
	dst = append(dst, "\r\n"...)
	return dst, nil
}

// priorHops is what earlier hops put in the fields the gateway extends.
type priorHops struct {
	xff []string // X-Forwarded-For values
	via []string // Via values
}

// appendFields appends the end-to-end fields of in with canonical names, leaving out
// hop-by-hop fields, those the Connection header names, those skip reports,
// X-Forwarded-For, whose values it returns when keepXFF (for the caller to append the
// client address to), and Via, whose values it returns for appendVia. It fails on a name
// or value HTTP cannot carry, naming the field.
func appendFields(dst []byte, in codec.Header, skip func(lowerKey string) bool, keepXFF bool) ([]byte, priorHops, error) {
	toks := connectionTokens(in)
	var prior priorHops
	for _, f := range in {
		key := strings.ToLower(f.Key)
		if http1.IsHopByHop(key) || http1.IsConnectionToken(toks, key) || skip(key) {
			continue
		}
		if !http1.ValidFieldName(f.Key) {
			return dst, priorHops{}, fmt.Errorf("header %q: name is not an HTTP token", f.Key)
		}
		if !http1.ValidFieldValue(f.Value) {
			return dst, priorHops{}, fmt.Errorf("header %q: value holds a control byte", f.Key)
		}
		switch key {
		case "x-forwarded-for":
			if keepXFF {
				prior.xff = append(prior.xff, f.Value)
			}
			continue
		case "via":
			prior.via = append(prior.via, f.Value)
			continue
		}
		dst = http1.AppendField(dst, f.Key, f.Value)
	}
	return dst, prior, nil
}

// viaEntry is the gateway's entry in the Via of a request it forwards: an HTTP-to-HTTP
// gateway must add one (RFC 9110 7.6.3), after those of the hops before it, naming the
// protocol version it received the request in (HTTP/1.minor).
func viaEntry(minor int) string {
	if minor == 0 {
		return "1.0 mgw"
	}
	return "1.1 mgw"
}

// appendVia appends one Via field: the prior values in order, then self unless empty;
// nothing when that is empty.
func appendVia(dst []byte, prior []string, self string) []byte {
	start := len(dst)
	dst = append(dst, "Via: "...)
	valueAt := len(dst)
	for _, v := range prior {
		if v = strings.Trim(v, " \t"); v == "" {
			continue
		}
		if len(dst) > valueAt {
			dst = append(dst, ", "...)
		}
		dst = append(dst, v...)
	}
	if self != "" {
		if len(dst) > valueAt {
			dst = append(dst, ", "...)
		}
		dst = append(dst, self...)
	}
	if len(dst) == valueAt {
		return dst[:start]
	}
	return append(dst, "\r\n"...)
}

// appendForwardedFor appends X-Forwarded-For as forwardedFor computes it, or nothing
// when it would be empty.
func appendForwardedFor(dst []byte, prior []string, client netip.AddrPort) []byte {
	if len(prior) == 0 && !client.IsValid() {
		return dst
	}
	start := len(dst)
	dst = append(dst, "X-Forwarded-For: "...)
	valueAt := len(dst)
	for i, v := range prior {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = append(dst, v...)
	}
	if client.IsValid() {
		if len(prior) > 0 {
			dst = append(dst, ", "...)
		}
		dst = client.Addr().Unmap().AppendTo(dst)
	}
	if len(dst) == valueAt {
		return dst[:start] // prior values that were all empty
	}
	return append(dst, "\r\n"...)
}

func appendHostAndEnd(dst []byte, host string) []byte {
	dst = append(dst, "Host: "...)
	dst = append(dst, host...)
	return append(dst, "\r\n\r\n"...)
}
