package http1

import (
	"bytes"
	"strings"

	"github.com/mgw-project/mgw/codec"
)

// ResponseHead is a parsed status line and header section of a backend's response: the
// other direction of RequestHead, with the same rules for fields (keys lowercased,
// strings carved from one private copy of the head).
type ResponseHead struct {
	Status int
	// Minor is the protocol minor version: 0 or 1.
	Minor int
	// Header holds every field in order, keys lowercased, values trimmed. Repeated fields
	// stay separate entries.
	Header codec.Header
	// ContentLength is the declared body length, or -1 when there is none (or when
	// Transfer-Encoding overrides it).
	ContentLength int64
	// Chunked is true when the body is framed by Transfer-Encoding: chunked.
	Chunked bool
	// KeepAlive says whether the connection may carry another request after this
	// response: HTTP/1.1 unless Connection: close; HTTP/1.0 only with keep-alive. A body
	// delimited by the close (neither length nor chunked) also ends the connection; the
	// body decoder knows that, this field does not.
	KeepAlive bool
	// Connection holds the field names the Connection header lists (lowercased): they
	// are hop-by-hop for this message.
	Connection []string
}

// ParseResponseHead parses one response head from the start of b, like ParseHead does a
// request's: n is the number of bytes the head took (0 with a nil error: incomplete, call
// again with more bytes). The rules are those a proxy needs to keep its connection to a
// backend in step: CRLF line ends only, no obsolete line folding, a field name that is a
// token and a value without control bytes, one Content-Length value, and no
// Transfer-Encoding but chunked (we send none, RFC 9112 6.1 lets a recipient refuse
// others). Transfer-Encoding with Content-Length is accepted as RFC 9112 6.3 says (chunked
// wins) but the connection is not reused. Errors are *Error with Status 502: the gateway
// answers its client that the backend failed.
func ParseResponseHead(b []byte, lim *Limits, h *ResponseHead) (int, error) {
	maxHead := lim.headBytes()
	n, lines := responseHeadEnd(b)
	if n == 0 {
		if len(b) > maxHead {
			return 0, errf(502, "response head larger than %d bytes", maxHead)
		}
		if lf := bytes.IndexByte(b, '\n'); lf >= 0 {
			// The status line is in: a backend that is not speaking HTTP fails now,
			// not after it has filled the head budget.
			if lf == 0 || b[lf-1] != '\r' {
				return 0, errf(502, "bare LF in response head at offset %d", lf)
			}
			if _, _, err := parseStatusLine(b[:lf-1]); err != nil {
				return 0, err
			}
		} else if len(b) >= 5 && string(b[:5]) != "HTTP/" {
			return 0, errf(502, "response does not start with an HTTP version: %q", clip(b))
		}
		return 0, nil
	}
	if n > maxHead {
		return 0, errf(502, "response head larger than %d bytes", maxHead)
	}
	return n, parseResponseHead(b[:n], lines-1, lim, h)
}

// responseHeadEnd returns the offset just past the empty line that ends the head (0 when
// it is not in b yet), and how many lines come before it. One walk from line end to line
// end, which the head's lines are short enough for: a search for CRLFCRLF stops at every
// CR, and a count of the lines would be a second pass. It ends at the first line that is
// just CRLF; a bare LF before it is the parser's to refuse.
func responseHeadEnd(b []byte) (end, lines int) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0, lines
		}
		if j == 1 && b[i] == '\r' && lines > 0 {
			return i + 2, lines
		}
		lines++
		i += j + 1
	}
}

// parseResponseHead parses a whole head, src, of which fields lines are fields.
func parseResponseHead(src []byte, fields int, lim *Limits, h *ResponseHead) error {
	hdr, conn := h.Header[:0], h.Connection[:0]
	*h = ResponseHead{Header: hdr, Connection: conn, ContentLength: -1}
	buf := make([]byte, len(src)) // the strings below are carved from this copy
	copy(buf, src)
	maxFields := lim.headers()
	if cap(h.Header) == 0 {
		// One allocation for the fields, not one per doubling: a line per field, less
		// the status line and the empty one.
		h.Header = make(codec.Header, 0, min(max(fields, 1), maxFields))
	}

	lf := bytes.IndexByte(buf, '\n')
	if lf < 1 || buf[lf-1] != '\r' {
		return errf(502, "bare LF in response head at offset %d", lf)
	}
	minor, status, err := parseStatusLine(buf[:lf-1])
	if err != nil {
		return err
	}
	h.Minor, h.Status = minor, status
	clSeen, teSeen, connClose, connKeep := false, false, false, false
	for p := lf + 1; ; {
		e := p + bytes.IndexByte(buf[p:], '\n')
		if buf[e-1] != '\r' {
			return errf(502, "bare LF in response head at offset %d", e)
		}
		line := buf[p : e-1]
		p = e + 1
		if len(line) == 0 {
			break
		}
		if len(h.Header) == maxFields {
			return errf(502, "more than %d response header fields", maxFields)
		}
		key, value, err := parseField(trimNameWS(line), "response header")
		if err != nil {
			return as502(err)
		}
		h.Header = append(h.Header, codec.Field{Key: key, Value: value})
		switch key {
		case "content-length":
			n, err := parseContentLength(value)
			if err != nil {
				return as502(err)
			}
			if clSeen && n != h.ContentLength {
				return errf(502, "conflicting Content-Length values %d and %d", h.ContentLength, n)
			}
			clSeen, h.ContentLength = true, n
		case "transfer-encoding":
			if teSeen || !equalFoldASCII(value, "chunked") {
				return errf(502, "Transfer-Encoding %q: only one chunked coding is accepted", clipS(value))
			}
			teSeen, h.Chunked = true, true
		case "connection":
			for v := value; v != ""; {
				var tok string
				tok, v, _ = strings.Cut(v, ",")
				if tok = trimOWSString(tok); tok == "" {
					continue
				}
				connClose = connClose || equalFoldASCII(tok, "close")
				connKeep = connKeep || equalFoldASCII(tok, "keep-alive")
				h.Connection = append(h.Connection, strings.ToLower(tok))
			}
		}
	}
	if teSeen && minor == 0 {
		return errf(502, "Transfer-Encoding in an HTTP/1.0 response")
	}
	if minor == 1 {
		h.KeepAlive = !connClose
	} else {
		h.KeepAlive = connKeep && !connClose
	}
	if teSeen && clSeen {
		// RFC 9112 6.3: chunked wins, and a message framed two ways may have been
		// meant differently by someone in between: do not reuse the connection.
		h.ContentLength, h.KeepAlive = -1, false
	}
	return nil
}

// trimNameWS removes whitespace between a response field's name and its colon, in place:
// a request with it is refused (RFC 9112 5.1), but a proxy must instead remove it from a
// response before forwarding, and the field is then an ordinary one.
func trimNameWS(line []byte) []byte {
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	j := i
	for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
		j++
	}
	if i == 0 || j == i || j == len(line) || line[j] != ':' {
		return line
	}
	copy(line[j-i:], line[:i])
	return line[j-i:]
}

// parseStatusLine parses "HTTP/1.x SSS SP reason" (the SP and reason may be missing:
// older servers send "HTTP/1.1 200").
func parseStatusLine(line []byte) (minor, status int, err error) {
	if len(line) < 12 || (len(line) > 12 && line[12] != ' ') || line[8] != ' ' {
		return 0, 0, errf(502, "malformed status line %q", clip(line))
	}
	minor, err = parseVersion(line[:8])
	if err != nil {
		return 0, 0, as502(err)
	}
	for _, c := range line[9:12] {
		if !isDigit(c) {
			return 0, 0, errf(502, "malformed status code in %q", clip(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, 0, errf(502, "status %d out of range", status)
	}
	for _, c := range line[min(len(line), 13):] {
		if !isValueByte[c] {
			return 0, 0, errf(502, "invalid byte %s in reason phrase", quoteByte(c))
		}
	}
	return minor, status, nil
}

// as502 turns a field error that would be a 400 to a client into the backend's failure.
func as502(err error) error {
	if e := AsError(err); e != nil {
		return &Error{Status: 502, Reason: e.Reason}
	}
	return err
}

// IsConnectionToken reports whether key (lowercase) is listed in the Connection tokens.
func IsConnectionToken(tokens []string, key string) bool {
	for _, t := range tokens {
		if t == key {
			return true
		}
	}
	return false
}
