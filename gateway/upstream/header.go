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
