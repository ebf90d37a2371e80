package http1

import "strings"

// hopByHop are the fields that describe one connection, not the message (RFC 9110 7.6.1,
// plus the de-facto Proxy-Connection and Keep-Alive). A proxy drops them, and every field
// named in Connection, before forwarding.
var hopByHop = [...]string{
	"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
	"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
}

// IsHopByHop reports whether the field name (any case) is hop-by-hop by definition.
func IsHopByHop(name string) bool {
	for _, h := range hopByHop {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// ConnectionTokens calls f for each field name listed in a Connection header value
// (comma-separated, optional whitespace), lowercased; such fields are hop-by-hop too.
func ConnectionTokens(value string, f func(name string)) {
	for value != "" {
		var tok string
		tok, value, _ = strings.Cut(value, ",")
		tok = strings.TrimSpace(tok)
		if tok != "" {
			f(strings.ToLower(tok))
		}
	}
}
