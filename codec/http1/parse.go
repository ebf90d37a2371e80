package http1

import (
	"bytes"
	"strings"
	"unsafe"

	"github.com/mgw-project/mgw/codec"
)

// ParseHead parses one request head (request line and header section, RFC 9112) from the
// start of b. It returns the number of bytes the head took, including any empty lines
// before the request line (which RFC 9112 2.2 lets a server skip) and the final CRLF;
// the body, if any, starts at b[n:]. n == 0 && err == nil means the head is incomplete:
// call again with the same bytes followed by more. An incomplete head longer than the
// head limit fails with 431 at once, and a request line that is already wrong fails at
// once, so a client cannot hold a buffer by sending a head slowly.
//
// Any non-nil error is an *Error; the caller answers its Status and closes the
// connection. lim may be nil for the defaults. h is overwritten (see RequestHead for what
// is retained); it also remembers how far an incomplete head was scanned, so reuse one h
// per connection and call h.Reset before parsing unrelated bytes after an incomplete
// result.
//
// Bare LF policy: a line must end in CRLF. RFC 9112 2.2 allows a recipient to accept a
// bare LF, but parsers that do and parsers that don't disagree about where lines end,
// which is exactly what request smuggling feeds on, and no real client sends one. A bare
// LF anywhere in the head is a 400.
func ParseHead(b []byte, lim *Limits, h *RequestHead) (n int, err error) {
	maxHead := lim.headBytes()
	start := 0
	for start+1 < len(b) && b[start] == '\r' && b[start+1] == '\n' {
		start += 2
	}
	prev := h.scanned
	end, firstLF, resume, err := findHeadEnd(b, start, prev, maxHead)
	if err != nil {
		h.scanned = 0
		return 0, err
	}
	if end == 0 {
		// Until the request line is complete each call checks what there is of it, and
		// the call that completes it checks it whole; later calls resume past it.
		if prev <= start {
			lf := -1
			if firstLF >= 0 {
				lf = firstLF - start
			}
			if err := checkPartialHead(b[start:], lf); err != nil {
				h.scanned = 0
				return 0, err
			}
		}
		h.scanned = resume
		return 0, nil
	}
	h.scanned = 0
	if err := parseHead(b[start:end], lim, h); err != nil {
		return 0, err
	}
	return end, nil
}

// findHeadEnd returns the offset just past the CRLFCRLF that ends the head (0 when not
// there yet), the offset of the request line's LF when this call saw it (else -1), and
// the start of the first incomplete line, where the next call may resume (lines before
// it were already checked). It rejects a bare LF and a head over maxHead.
func findHeadEnd(b []byte, start, resume, maxHead int) (end, firstLF, next int, err error) {
	firstLF = -1
	i := start
	if resume > start && resume <= len(b) && b[resume-1] == '\n' {
		i = resume // (a resume point not just after an LF is stale: rescan)
	}
	for {
		if i > maxHead {
			return 0, firstLF, 0, errf(431, "request head larger than %d bytes", maxHead)
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		lf := i + j
		if lf == 0 || b[lf-1] != '\r' {
			return 0, firstLF, 0, errf(400, "bare LF without CR at offset %d", lf)
		}
		if i == start {
			if lf+1 > maxHead {
				return 0, firstLF, 0, lineTooLong(maxHead)
			}
			firstLF = lf
		}
		if lf == i+1 && i > start {
			if lf+1 > maxHead {
				return 0, firstLF, 0, errf(431, "request head larger than %d bytes", maxHead)
			}
			return lf + 1, firstLF, 0, nil
		}
		i = lf + 1
	}
	if len(b) > maxHead {
		if i == start {
			return 0, firstLF, 0, lineTooLong(maxHead)
		}
		return 0, firstLF, 0, errf(431, "request head larger than %d bytes", maxHead)
	}
	return 0, firstLF, i, nil
}

// lineTooLong is the error for a request line that alone passes the head limit: 414 URI
// Too Long (RFC 9112 3: a server answers 414 to a request-target longer than any it
// accepts; the method and version add a few bytes to what the target may take), not
// 431, which is about header fields.
func lineTooLong(maxHead int) error {
	return errf(414, "request line longer than %d bytes", maxHead)
}

// checkPartialHead rejects an incomplete head whose beginning is already invalid (a TLS
// ClientHello, an MMTP frame, binary noise) rather than waiting for 16 KiB of it. lf is
// the request line's LF relative to b, or negative when the line is still incomplete.
func checkPartialHead(b []byte, lf int) error {
	if lf >= 0 {
		_, _, _, err := parseRequestLine(b[:lf-1])
		return err
	}
	// The line is incomplete: check that what is there could still be a method and a
	// target (or the first half of an empty line's CRLF).
	if len(b) == 1 && b[0] == '\r' {
		return nil
	}
	i := 0
	for i < len(b) && isTchar[b[i]] {
		i++
	}
	if i == len(b) {
		return nil
	}
	if b[i] != ' ' || i == 0 {
		return errf(400, "invalid byte %s in method at offset %d", quoteByte(b[i]), i)
	}
	for i++; i < len(b) && b[i] != ' '; i++ {
		if !isTargetByte[b[i]] && b[i] != '\r' {
			return errf(400, "invalid byte %s in request-target at offset %d", quoteByte(b[i]), i)
		}
	}
	return nil
}

// parseHead parses a complete head (no leading empty lines, ending in CRLFCRLF) into h.
func parseHead(src []byte, lim *Limits, h *RequestHead) error {
	hdr := h.Header[:0]
	*h = RequestHead{Header: hdr, ContentLength: -1}

	// One copy per head: the strings below point into it, so it must never be written
	// after a string is carved from it (names are lowercased before they are carved).
	buf := make([]byte, len(src))
	copy(buf, src)

	lf := bytes.IndexByte(buf, '\n')
	if lf < 1 || buf[lf-1] != '\r' {
		return errf(400, "bare LF without CR at offset %d", lf)
	}
	method, target, minor, err := parseRequestLine(buf[:lf-1])
	if err != nil {
		return err
	}
	h.Method, h.Target, h.Minor = str(method), str(target), minor
	if err := checkTargetForm(h); err != nil {
		return err
	}

	var st fieldState
	maxFields := lim.headers()
	for p := lf + 1; ; {
		j := bytes.IndexByte(buf[p:], '\n')
		if j < 0 {
			// Only possible when h carried scan progress from other bytes (a missing
			// Reset): refuse rather than guess.
			return errf(400, "head ends mid-line at offset %d: parser state out of date", len(buf))
		}
		e := p + j
		if buf[e-1] != '\r' {
			return errf(400, "bare LF without CR at offset %d", e)
		}
		line := buf[p : e-1]
		p = e + 1
		if len(line) == 0 {
			if p != len(buf) {
				// Only possible when h carried scan progress from other bytes (a
				// missing Reset): refuse rather than consume past the real head.
				return errf(400, "head ends before offset %d: parser state out of date", len(buf))
			}
			break
		}
		if len(h.Header) == maxFields {
			return errf(431, "more than %d header fields", maxFields)
		}
		key, value, err := parseField(line, "header")
		if err != nil {
			return err
		}
		h.Header = append(h.Header, codec.Field{Key: key, Value: value})
		if err := st.apply(h, key, value, lim); err != nil {
			return err
		}
	}
	return st.finish(h)
}

// parseRequestLine splits "method SP request-target SP HTTP-version" (without CRLF). It
// is strict about single spaces: a parser that accepts several disagrees with one that
// does not about where the target ends.
func parseRequestLine(line []byte) (method, target []byte, minor int, err error) {
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	if i == len(line) {
		return nil, nil, 0, errf(400, "request line has no request-target")
	}
	if line[i] != ' ' || i == 0 {
		return nil, nil, 0, errf(400, "invalid byte %s in method at offset %d", quoteByte(line[i]), i)
	}
	method = line[:i]
	i++
	t := i
	for i < len(line) && isTargetByte[line[i]] {
		i++
	}
	if i == t {
		if i == len(line) {
			return nil, nil, 0, errf(400, "request line has no request-target")
		}
		return nil, nil, 0, errf(400, "invalid byte %s at start of request-target (offset %d)", quoteByte(line[i]), i)
	}
	if i == len(line) {
		return nil, nil, 0, errf(400, "request line has no HTTP version")
	}
	if line[i] != ' ' {
		return nil, nil, 0, errf(400, "invalid byte %s in request-target at offset %d", quoteByte(line[i]), i)
	}
	target = line[t:i]
	for j := 0; ; j += 3 {
		k := bytes.IndexByte(target[j:], '%')
		if k < 0 {
			break
		}
		j += k
		if j+2 >= len(target) || !isHex(target[j+1]) || !isHex(target[j+2]) {
			return nil, nil, 0, errf(400, "malformed percent-encoding in request-target at offset %d", t+j)
		}
	}
	minor, err = parseVersion(line[i+1:])
	return method, target, minor, err
}

// parseVersion returns the minor version of an HTTP/1.x version, read as 1 for 1.2 to 1.9:
// a higher minor version is compatible with the one we implement and is served as it
// (RFC 9110 2.5, 6.2). Other majors are 505.
func parseVersion(v []byte) (int, error) {
	if len(v) == 8 && string(v[:5]) == "HTTP/" && v[6] == '.' &&
		'0' <= v[5] && v[5] <= '9' && '0' <= v[7] && v[7] <= '9' {
		if v[5] == '1' {
			return min(int(v[7]-'0'), 1), nil
		}
		return 0, errf(505, "HTTP version %q not supported", clip(v))
	}
	return 0, errf(400, "malformed HTTP version %q", clip(v))
}

// checkTargetForm enforces RFC 9112 3.2: origin-form or absolute-form for ordinary
// methods, authority-form only (and always) for CONNECT, asterisk-form only for OPTIONS.
//
// CONNECT asks for a tunnel, which the gateway does not offer: a well-formed one is 501
// (RFC 9110 9.3.6 lets a server refuse the method), and closing after it keeps tunnel
// bytes the client may already be sending from being read as requests.
//
// Absolute-form is accepted (RFC 9112 3.2.2 requires a server to) for the http scheme
// only: the client is talking plain HTTP to us, so an https URI is not one we can serve
// as asked. Its authority becomes Host, whatever the Host field says: RFC 9112 3.2.2 has
// a server ignore the field and a proxy replace it from the target, and the gateway is
// both. Rejecting a disagreeing Host instead would refuse requests the RFC says to serve.
// ToRequest then hands on the origin-form target, as a proxy must forward it.
func checkTargetForm(h *RequestHead) error {
	t := h.Target
	switch {
	case h.Method == "CONNECT":
		if colon := strings.LastIndexByte(t, ':'); !validHost(t) || colon < 0 || colon == len(t)-1 || colon < strings.LastIndexByte(t, ']') {
			return errf(400, "CONNECT needs an authority-form target (host:port), got %q", clipS(t))
		}
		return errf(501, "CONNECT (tunnelling to %q) is not implemented", clipS(t))
	case t == "*":
		if h.Method != "OPTIONS" {
			return errf(400, "asterisk-form target only allowed with OPTIONS")
		}
		return nil
	case t[0] == '/':
		return nil
	}
	scheme, auth, _, ok := splitAbsolute(t)
	if !ok {
		return errf(400, "request-target %q is neither origin-form nor absolute-form", clipS(t))
	}
	if !equalFoldASCII(scheme, "http") {
		return errf(400, "absolute-form target with scheme %q: only http is served", clipS(scheme))
	}
	if auth == "" {
		return errf(400, "absolute-form target %q has an empty authority", clipS(t))
	}
	if !validHost(auth) {
		return errf(400, "invalid authority %q in request-target", clipS(auth))
	}
	h.Host = auth
	return nil
}

// splitAbsolute splits an absolute-form target "scheme://authority[/path][?query]" into
// its scheme, authority and the rest (path and query, possibly empty).
func splitAbsolute(t string) (scheme, auth, rest string, ok bool) {
	i := 0
	for i < len(t) && (isAlpha(t[i]) || i > 0 && (isDigit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.')) {
		i++
	}
	if i == 0 || len(t) < i+3 || t[i:i+3] != "://" {
		return "", "", "", false
	}
	scheme, rest = t[:i], t[i+3:]
	for j := 0; j < len(rest); j++ {
		if rest[j] == '/' || rest[j] == '?' {
			return scheme, rest[:j], rest[j:], true
		}
	}
	return scheme, rest, "", true
}

// originForm is the target to forward for an accepted request-target (RFC 9112 3.2.4):
// an absolute-form target loses its scheme and authority, an empty path becomes "/",
// or "*" for an OPTIONS without path or query.
// AsteriskForm reports an OPTIONS request about the server itself rather than a resource:
// target "*", or an absolute-form target whose path is empty, which a proxy forwards as "*"
// (RFC 9112 3.2.4).
func AsteriskForm(h *RequestHead) bool {
	return h.Method == "OPTIONS" && OriginForm(h) == "*"
}

// OriginForm is h's target as a proxy forwards it (RFC 9112 3.2.2, 3.2.4): an
// absolute-form target reduced to its path and query; others as they are.
func OriginForm(h *RequestHead) string {
	if h.Target == "" {
		return ""
	}
	return originForm(h.Method, h.Target)
}

func originForm(method, target string) string {
	if target == "*" || target[0] == '/' {
		return target
	}
	_, _, rest, ok := splitAbsolute(target)
	switch {
	case !ok: // not a target ParseHead accepts; nothing to rewrite
		return target
	case rest != "" && rest[0] == '/':
		return rest
	case rest == "" && method == "OPTIONS":
		return "*"
	}
	return "/" + rest
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

// validHost checks uri-host [ ":" port ] (RFC 3986 3.2.2): an IP-literal in brackets or
// a reg-name/IPv4 without ':', then an optional all-digit port. Its purpose is to keep
// bytes that upstreams and logs would read differently out of Host.
func validHost(s string) bool {
	host, port := s, ""
	if len(s) > 0 && s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host, port = s[1:end], s[end+1:]
		for i := 0; i < len(host); i++ {
			if c := host[i]; !isHex(c) && c != ':' && c != '.' && c != 'v' && c != 'V' {
				return false
			}
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		for i := 0; i < len(host); i++ {
			if c := host[i]; !isHostByte[c] || c == ':' || c == '[' || c == ']' {
				return false
			}
		}
	}
	if port == "" {
		return true
	}
	if port[0] != ':' {
		return false
	}
	for i := 1; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

// parseField parses "name: value" (a line without CRLF) in place: it lowercases the name
// in the caller's private copy and returns strings carved from it. what is "header" or
// "trailer", for the Reason.
func parseField(line []byte, what string) (key, value string, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", errf(400, "obsolete line folding in %s section", what)
	}
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	if i == len(line) {
		return "", "", errf(400, "%s line %q has no colon", what, clip(line))
	}
	if line[i] != ':' {
		if line[i] == ' ' || line[i] == '\t' {
			return "", "", errf(400, "whitespace between %s field name %q and colon", what, clip(line[:i]))
		}
		return "", "", errf(400, "invalid byte %s in %s field name %q", quoteByte(line[i]), what, clip(line[:i]))
	}
	if i == 0 {
		return "", "", errf(400, "empty %s field name", what)
	}
	name := line[:i]
	v := trimOWS(line[i+1:])
	for j := 0; j < len(v); j++ {
		if !isValueByte[v[j]] {
			return "", "", errf(400, "invalid byte %s in %s field %q value", quoteByte(v[j]), what, clip(name))
		}
	}
	for j, c := range name {
		name[j] = lowerTab[c]
	}
	return str(name), str(v), nil
}

// clip and clipS shorten what a Reason quotes: enough to find the culprit, not an echo
// of kilobytes of the client's bytes.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func clipS(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// str carves an immutable string out of a private buffer without copying. The buffer
// must never be written afterwards.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
