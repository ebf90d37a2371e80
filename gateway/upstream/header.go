package upstream

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
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

// copyHeader copies the end-to-end fields of in into out with canonical names, leaving
// out hop-by-hop fields, those the Connection header names, and those skip reports.
// It fails on a name or value HTTP cannot carry, naming the field.
func copyHeader(out http.Header, in codec.Header, skip func(lowerKey string) bool) error {
	toks := connectionTokens(in)
	for _, f := range in {
		key := strings.ToLower(f.Key)
		if http1.IsHopByHop(key) || isConnectionToken(toks, key) || skip(key) {
			continue
		}
		if !validFieldName(f.Key) {
			return fmt.Errorf("header %q: name is not an HTTP token", f.Key)
		}
		if !validFieldValue(f.Value) {
			return fmt.Errorf("header %q: value holds a control byte", f.Key)
		}
		ck := textproto.CanonicalMIMEHeaderKey(f.Key)
		out[ck] = append(out[ck], f.Value)
	}
	return nil
}

// forwardedFor returns the X-Forwarded-For value: prior (the values the client sent, when
// they may be kept) with the client address appended, or just the client address.
func forwardedFor(prior []string, client netip.AddrPort) string {
	if !client.IsValid() {
		return strings.Join(prior, ", ")
	}
	ip := client.Addr().Unmap().String()
	if len(prior) == 0 {
		return ip
	}
	return strings.Join(prior, ", ") + ", " + ip
}

// responseHeader turns a backend's header into the codec's form: names lowercased,
// hop-by-hop fields and Content-Length dropped (the codec frames the body itself), and a
// Content-Encoding of exactly gzip turned into the Gzip flag. Repeated fields are joined
// with ", " (MMTP allows a key once), except Set-Cookie, whose values may hold commas and
// so stay separate entries. Keys come out sorted, so output is deterministic.
func responseHeader(h http.Header) (codec.Header, bool) {
	var toks []string
	for _, v := range h["Connection"] {
		http1.ConnectionTokens(v, func(name string) { toks = append(toks, name) })
	}
	keys := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	out := make(codec.Header, 0, n)
	gzip := false
	for _, k := range keys {
		vs := h[k]
		if len(vs) == 0 || http1.IsHopByHop(k) || isConnectionToken(toks, k) {
			continue
		}
		lk := strings.ToLower(k)
		switch lk {
		case "content-length":
			continue
		case "content-encoding":
			if len(vs) == 1 && strings.EqualFold(strings.TrimSpace(vs[0]), "gzip") {
				gzip = true
				continue
			}
		case "set-cookie":
			for _, v := range vs {
				out = append(out, codec.Field{Key: lk, Value: v})
			}
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ", ")
		}
		out = append(out, codec.Field{Key: lk, Value: v})
	}
	return out, gzip
}

// stripHopByHop removes hop-by-hop fields and those the Connection header names from a
// backend response header in place, for Forward.
func stripHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		http1.ConnectionTokens(v, func(name string) { h.Del(name) })
	}
	for k := range h {
		if http1.IsHopByHop(k) {
			delete(h, k)
		}
	}
}

// noDefaultUserAgent keeps net/http from adding its own User-Agent when the client sent
// none: the backend should see the client's request, not the gateway's library.
func noDefaultUserAgent(h http.Header) {
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
}
