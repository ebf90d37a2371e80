package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// Limits on a backend's answer to Call. The head limit is net/http's default
// MaxResponseHeaderBytes as the Transport was configured; one line must also fit the
// connection's read buffer.
const (
	maxRespHeadBytes = 64 << 10
	maxRespFields    = 256
	maxInterim       = 5 // 1xx answers skipped before the final one
)

// h1Response is a backend's whole answer to a Call, in the codec's form.
type h1Response struct {
	status    int
	header    codec.Header // lowercased, hop-by-hop and framing fields dropped, sorted
	gzip      bool         // Content-Encoding was exactly gzip (and is not in header)
	body      []byte       // nil when empty
	keepAlive bool         // the connection may carry another request

	// As read, for Forward's conversion: fields with lowercase keys, Connection tokens.
	minor  int
	fields codec.Header
	conn   []string
}

var errRespMalformed = errors.New("malformed response")

// readResponse reads one response to a request whose method allows a body (Call sends
// POST) from br, skipping interim 1xx answers. The body is read whole, up to maxBody
// (over it: errTooLarge). Field semantics follow responseHeader exactly: the two must
// agree, because Forward's answers go through that one and Call's through this.
func readResponse(br *bufio.Reader, maxBody int64) (*h1Response, error) {
	r, framing, err := readFinalHead(br)
	if err != nil {
		return nil, err
	}
	r.header, r.gzip = codecHeader(r.fields, r.conn)
	switch {
	case r.status == 204 || r.status == 304:
		// No body whatever the head says (RFC 9112 6.3).
	case framing.chunked:
		r.body, err = readChunked(br, maxBody)
	case framing.length >= 0:
		r.body, err = readLength(br, framing.length, maxBody)
	default:
		r.body, err = readToEOF(br, maxBody)
		r.keepAlive = false
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// readFinalHead reads response heads until a final (non-1xx) one.
func readFinalHead(br *bufio.Reader) (*h1Response, respFraming, error) {
	for interim := 0; ; interim++ {
		r, framing, err := readResponseHead(br)
		if err != nil {
			return nil, framing, err
		}
		if r.status >= 200 {
			return r, framing, nil
		}
		if r.status == 101 {
			return nil, framing, fmt.Errorf("%w: 101 Switching Protocols to a request that asked for no upgrade", errRespMalformed)
		}
		if interim == maxInterim {
			return nil, framing, fmt.Errorf("%w: more than %d interim 1xx answers", errRespMalformed, maxInterim)
		}
	}
}

type respFraming struct {
	chunked bool
	length  int64 // -1: none declared
}

// readResponseHead reads a status line and fields.
func readResponseHead(br *bufio.Reader) (*h1Response, respFraming, error) {
	fr := respFraming{length: -1}
	budget := maxRespHeadBytes
	line, err := readLine(br, &budget)
	if err != nil {
		if err == io.EOF {
			return nil, fr, fmt.Errorf("backend closed the connection before answering: %w", io.ErrUnexpectedEOF)
		}
		return nil, fr, err
	}
	r := &h1Response{}
	minor, status, err := parseStatusLine(line)
	if err != nil {
		return nil, fr, err
	}
	r.status = status
	r.keepAlive = minor == 1
	var fields codec.Header
	var conn []string // Connection tokens
	sawCL, sawTE := false, false
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fr, fmt.Errorf("response head: %w", err)
		}
		if len(line) == 0 {
			break
		}
		if len(fields) == maxRespFields {
			return nil, fr, fmt.Errorf("%w: more than %d header fields", errRespMalformed, maxRespFields)
		}
		key, value, err := parseRespField(line)
		if err != nil {
			return nil, fr, err
		}
		switch key {
		case "connection":
			http1.ConnectionTokens(value, func(name string) {
				switch name {
				case "close":
					r.keepAlive = false
				case "keep-alive":
					if minor == 0 {
						r.keepAlive = true
					}
				}
				conn = append(conn, name)
			})
		case "content-length":
			n, err := parseLength(value)
			if err != nil || (sawCL && n != fr.length) {
				return nil, fr, fmt.Errorf("%w: Content-Length %q", errRespMalformed, value)
			}
			sawCL, fr.length = true, n
		case "transfer-encoding":
			// Only chunked is a framing a backend may use towards us (we send no TE).
			if !strings.EqualFold(strings.TrimSpace(value), "chunked") || sawTE {
				return nil, fr, fmt.Errorf("%w: Transfer-Encoding %q", errRespMalformed, value)
			}
			sawTE, fr.chunked = true, true
		}
		fields = append(fields, codec.Field{Key: key, Value: value})
	}
	if sawTE && sawCL {
		// RFC 9112 6.3: chunked wins, and the connection must not be reused.
		fr.length, r.keepAlive = -1, false
	}
	if minor == 0 && fr.chunked {
		return nil, fr, fmt.Errorf("%w: chunked HTTP/1.0 response", errRespMalformed)
	}
	r.minor, r.fields, r.conn = minor, fields, conn
	return r, fr, nil
}

// codecHeader is responseHeader for fields read off the wire with lowercase keys.
func codecHeader(fields codec.Header, conn []string) (codec.Header, bool) {
	slices.SortStableFunc(fields, func(a, b codec.Field) int { return strings.Compare(a.Key, b.Key) })
	out := fields[:0] // filtering in place: out never overtakes the read index
	gzip := false
	for i := 0; i < len(fields); {
		k := fields[i].Key
		j := i + 1
		for j < len(fields) && fields[j].Key == k {
			j++
		}
		group := fields[i:j]
		i = j
		if http1.IsHopByHop(k) || isConnectionToken(conn, k) || k == "content-length" {
			continue
		}
		switch k {
		case "content-encoding":
			if len(group) == 1 && strings.EqualFold(strings.TrimSpace(group[0].Value), "gzip") {
				gzip = true
				continue
			}
		case "set-cookie":
			out = append(out, group...)
			continue
		}
		v := group[0].Value
		if len(group) > 1 {
			var b strings.Builder
			for n, f := range group {
				if n > 0 {
					b.WriteString(", ")
				}
				b.WriteString(f.Value)
			}
			v = b.String()
		}
		out = append(out, codec.Field{Key: k, Value: v})
	}
	if len(out) == 0 {
		return nil, gzip
	}
	return out, gzip
}

// readLine returns one line without its CRLF (a bare LF is accepted, as net/http does),
// charging it to budget. The slice is valid until the next read from br.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: a head line over %d bytes", errRespMalformed, br.Size())
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, fmt.Errorf("%w: head over %d bytes", errRespMalformed, maxRespHeadBytes)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readChunkLine is readLine for the chunked framing, where net/http (like RFC 9112)
// insists on CRLF: a bare LF there is an error, so both decoders agree on where a body
// ends.
func readChunkLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: a chunk line over %d bytes", errRespMalformed, br.Size())
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, fmt.Errorf("%w: chunk lines over %d bytes", errRespMalformed, maxRespHeadBytes)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: chunk line ends with a bare LF", errRespMalformed)
	}
	return line[:len(line)-2], nil
}

// parseStatusLine parses "HTTP/1.x SSS[ reason]".
func parseStatusLine(line []byte) (minor, status int, err error) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' ||
		(line[7] != '0' && line[7] != '1') || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, fmt.Errorf("%w: status line %q", errRespMalformed, clipBytes(line))
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("%w: status line %q", errRespMalformed, clipBytes(line))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, 0, fmt.Errorf("%w: status %d", errRespMalformed, status)
	}
	return int(line[7] - '0'), status, nil
}

// parseRespField splits "Name: value", lowercasing the name and trimming the value.
func parseRespField(line []byte) (key, value string, err error) {
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
	}
	if colon <= 0 {
		return "", "", fmt.Errorf("%w: header line %q", errRespMalformed, clipBytes(line))
	}
	name := line[:colon]
	for _, c := range name {
		if !isTokenByte(c) {
			return "", "", fmt.Errorf("%w: header name %q", errRespMalformed, clipBytes(name))
		}
	}
	v := line[colon+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return "", "", fmt.Errorf("%w: header %q: value holds a control byte", errRespMalformed, clipBytes(name))
		}
	}
	return lowerKey(name), string(v), nil
}

// lowerKey returns name lowercased, without allocating for the common fields.
func lowerKey(name []byte) string {
	for _, k := range commonRespKeys {
		if len(k) == len(name) && equalFoldLower(name, k) {
			return k
		}
	}
	b := make([]byte, len(name))
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}

var commonRespKeys = [...]string{
	"content-type", "content-length", "date", "server", "connection", "keep-alive",
	"transfer-encoding", "content-encoding", "cache-control", "set-cookie", "vary",
	"etag", "last-modified", "expires", "x-demo-backend", "location",
}

// equalFoldLower reports whether b equals the lowercase literal k ignoring ASCII case.
func equalFoldLower(b []byte, k string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != k[i] {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func parseLength(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 18 {
		return 0, errRespMalformed
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, errRespMalformed
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func clipBytes(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

// readLength reads a body of declared length n.
func readLength(br *bufio.Reader, n, max int64) ([]byte, error) {
	if n > max {
		return nil, errTooLarge
	}
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("response body: %w", err)
	}
	return b, nil
}

// readToEOF reads a body delimited by the connection's close.
func readToEOF(br *bufio.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(br, max+1))
	if err != nil {
		return nil, fmt.Errorf("response body: %w", err)
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

// readChunked decodes a chunked body and skips its trailer section.
func readChunked(br *bufio.Reader, max int64) ([]byte, error) {
	var b []byte
	budget := maxRespHeadBytes // for chunk-size lines and trailers together
	for {
		line, err := readChunkLine(br, &budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("chunked response body: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions carry nothing we use
		}
		for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
			line = line[:len(line)-1]
		}
		size, err := parseHex(line)
		if err != nil {
			return nil, fmt.Errorf("%w: chunk size %q", errRespMalformed, clipBytes(line))
		}
		if size == 0 {
			break
		}
		if int64(len(b))+size > max {
			return nil, errTooLarge
		}
		b = slices.Grow(b, int(size))
		n := len(b)
		b = b[:n+int(size)]
		if _, err := io.ReadFull(br, b[n:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("chunked response body: %w", err)
		}
		crlf, err := readChunkLine(br, &budget)
		if err != nil || len(crlf) != 0 {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("%w: no CRLF after a chunk", errRespMalformed)
			}
			return nil, fmt.Errorf("chunked response body: %w", err)
		}
	}
	for { // trailer fields, dropped: Call's answer has no trailers (CRLF strict, as net/http)
		line, err := readChunkLine(br, &budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("chunked response trailer: %w", err)
		}
		if len(line) == 0 {
			break
		}
	}
	if len(b) == 0 {
		return nil, nil
	}
	return b, nil
}

func parseHex(s []byte) (int64, error) {
	if len(s) == 0 || len(s) > 15 {
		return 0, errRespMalformed
	}
	var n int64
	for _, c := range s {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, errRespMalformed
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}
