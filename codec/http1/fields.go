package http1

import "strings"

// fieldState accumulates what the framing- and connection-relevant fields say across
// repeated fields, so the checks that need all of them (Content-Length vs
// Transfer-Encoding, Host count) run once at the end.
type fieldState struct {
	hosts     int
	clSeen    bool
	teSeen    bool
	connClose bool
	connKeep  bool
	// Transfer-Encoding lines form one list (RFC 9110 5.3), judged once the head is in:
	// its final coding, and the first fault among its elements.
	teFinal string
	teErr   error
}

func (st *fieldState) apply(h *RequestHead, key, value string, lim *Limits) error {
	switch key {
	case "host":
		st.hosts++
		if st.hosts > 1 {
			return errf(400, "multiple Host fields")
		}
		if value == "" {
			// An http URI has a non-empty host (RFC 9110 4.2.1), so its Host field can
			// have no empty value (RFC 9110 7.2): nothing to route or forward on.
			return errf(400, "empty Host field")
		}
		if !validHost(value) {
			return errf(400, "invalid Host %q", clipS(value))
		}
		if h.Host == "" { // an absolute-form target's authority wins (RFC 9112 3.2.2)
			h.Host = value
		}
	case "content-length":
		n, err := parseContentLength(value)
		if err != nil {
			return err
		}
		if st.clSeen && n != h.ContentLength {
			return errf(400, "conflicting Content-Length values %d and %d", h.ContentLength, n)
		}
		if n > lim.bodyBytes() {
			return errf(413, "Content-Length %d over the %d byte limit", n, lim.bodyBytes())
		}
		st.clSeen = true
		h.ContentLength = n
	case "transfer-encoding":
		if err := st.transferEncoding(h, value); err != nil {
			return err
		}
	case "connection":
		// Not ConnectionTokens: it lowercases into new strings, and this runs per request.
		for more := true; more; {
			var tok string
			tok, value, more = strings.Cut(value, ",")
			tok = trimOWSString(tok)
			st.connClose = st.connClose || equalFoldASCII(tok, "close")
			st.connKeep = st.connKeep || equalFoldASCII(tok, "keep-alive")
		}
	case "expect":
		if h.Minor == 1 && equalFoldASCII(value, "100-continue") {
			h.ExpectContinue = true
		}
	}
	return nil
}

// transferEncoding takes one Transfer-Encoding line into the list, which teCheck judges.
func (st *fieldState) transferEncoding(h *RequestHead, value string) error {
	st.teSeen = true
	if value == "" {
		return errf(400, "empty Transfer-Encoding")
	}
	for more := true; more; {
		var coding string
		coding, value, more = strings.Cut(value, ",")
		coding = trimOWSString(coding)
		name, params, hasParams := strings.Cut(coding, ";")
		name = trimOWSString(name)
		st.teFinal = name
		if st.teErr != nil {
			continue
		}
		switch {
		case name == "":
			st.teErr = errf(400, "empty element in Transfer-Encoding")
		case !equalFoldASCII(name, "chunked"):
			st.teErr = errf(501, "transfer-coding %q not implemented", clipS(name))
		case hasParams:
			st.teErr = errf(400, "parameters %q on chunked transfer-coding", clipS(params))
		case h.Chunked:
			st.teErr = errf(400, "chunked transfer-coding applied twice")
		default:
			h.Chunked = true
		}
	}
	return nil
}

// teCheck accepts exactly one coding in the whole list, "chunked". A list whose final
// coding is not chunked leaves the body's length unknowable: 400 and close (RFC 9112 6.3
// rule 4), checked first so "chunked, gzip" and "identity" are that, not 501. Otherwise
// a coding we cannot decode is 501 (RFC 9112 6.1), also when "gzip" and "chunked" come on
// two lines; chunked twice, or a chunked with parameters, is 400.
func (st *fieldState) teCheck() error {
	if st.teFinal != "" && !equalFoldASCII(st.teFinal, "chunked") {
		return errf(400, "final transfer-coding %q is not chunked", clipS(st.teFinal))
	}
	return st.teErr
}

func (st *fieldState) finish(h *RequestHead) error {
	if err := st.teCheck(); st.teSeen && err != nil {
		return err
	}
	if st.clSeen && st.teSeen {
		return errf(400, "both Content-Length and Transfer-Encoding present")
	}
	if st.teSeen && h.Minor == 0 {
		// RFC 9112 6.1: an HTTP/1.0 recipient cannot be relied on to frame this the way
		// we would; refuse rather than guess.
		return errf(400, "Transfer-Encoding in an HTTP/1.0 request")
	}
	if st.hosts == 0 && h.Minor == 1 {
		return errf(400, "missing Host field in HTTP/1.1 request")
	}
	// RFC 9110 10.1.1: a client must not send 100-continue without content; answering
	// one for an empty body would only put a stray interim response on the wire.
	h.ExpectContinue = h.ExpectContinue && h.HasBody()
	if h.Minor == 1 {
		h.KeepAlive = !st.connClose
	} else {
		h.KeepAlive = st.connKeep && !st.connClose
	}
	return nil
}

// parseContentLength accepts 1*DIGIT, or a list of identical such values ("42, 42", which
// RFC 9110 8.6 lets a recipient collapse). Signs, spaces inside a number, hex, empty
// elements and values over int64 are 400.
func parseContentLength(v string) (int64, error) {
	if v == "" {
		return 0, errf(400, "empty Content-Length")
	}
	first := int64(-1)
	for more := true; more; {
		var elem string
		elem, v, more = strings.Cut(v, ",")
		elem = trimOWSString(elem)
		if elem == "" {
			return 0, errf(400, "empty element in Content-Length")
		}
		var n int64
		for i := 0; i < len(elem); i++ {
			c := elem[i]
			if c < '0' || c > '9' {
				return 0, errf(400, "invalid byte %s in Content-Length %q", quoteByte(c), clipS(elem))
			}
			if n > (1<<63-1-int64(c-'0'))/10 {
				return 0, errf(400, "Content-Length %q overflows", clipS(elem))
			}
			n = n*10 + int64(c-'0')
		}
		if first >= 0 && n != first {
			return 0, errf(400, "conflicting Content-Length values %d and %d", first, n)
		}
		first = n
	}
	return first, nil
}
