package upstream

import (
	"strings"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// connectionTokens returns the field names a request's Connection header(s) list, which
// are hop-by-hop for that message. Nil (no allocation) in the usual case of none.
func connectionTokens(h codec.Header) []string {
	var toks []string
	for _, f := range h {
		if strings.EqualFold(f.Key, "connection") {
			http1.ConnectionTokens(f.Value, func(name string) { toks = append(toks, name) })
		}
	}
	return toks
}

func isConnectionToken(toks []string, key string) bool {
	for _, t := range toks {
		if strings.EqualFold(t, key) {
			return true
		}
	}
	return false
}

// validFieldName reports whether s is an HTTP token (RFC 9110 5.1).
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether s may be sent as an HTTP field value: no control bytes
// other than HTAB (MMTP values are arbitrary bytes; CR or LF would split the header).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
