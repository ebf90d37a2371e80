package http1

import "strings"

// hopByHop are the fields that describe one connection, not the message (RFC 9110 7.6.1,
// plus the de-facto Proxy-Connection and Keep-Alive). A proxy drops them, and every field
// named in Connection, before forwarding.
var hopByHop = [...]string{
	"connection", "proxy-connection", "keep-alive", "proxy-authenticate",
	"proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
}

// IsHopByHop reports whether the field name (any case) is hop-by-hop by definition. It
// runs for every field of every forwarded message: the length picks the one or two
// names to compare (a loop of strings.EqualFold over all nine was a quarter of the
// time of parsing a request head and writing a response head).
func IsHopByHop(name string) bool {
	switch len(name) {
	case 2:
		return equalFoldASCII(name, "te")
	case 7:
		return equalFoldASCII(name, "trailer") || equalFoldASCII(name, "upgrade")
	case 10:
		return equalFoldASCII(name, "connection") || equalFoldASCII(name, "keep-alive")
	case 16:
		return equalFoldASCII(name, "proxy-connection")
	case 17:
		return equalFoldASCII(name, "transfer-encoding")
	case 18:
		return equalFoldASCII(name, "proxy-authenticate")
	case 19:
		return equalFoldASCII(name, "proxy-authorization")
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
