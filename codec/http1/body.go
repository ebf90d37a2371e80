package http1

import "bytes"

type bodyState uint8

const (
	bodyDone bodyState = iota
	bodyLength
	chunkSize
	chunkData
	chunkDataEnd
	chunkTrailer
	bodyUntilClose
)

// BodyDecoder removes the framing of one message body (Content-Length or chunked, and for
// a response also a body delimited by the connection's close) as the bytes arrive, so a large body can be streamed without being buffered whole. It keeps no
// buffer: what it cannot use yet (a partial chunk-size line) it leaves unconsumed, for
// the caller to present again with more bytes. One BodyDecoder per connection, used by
// the goroutine reading it; Reset it for each request.
//
// Trailer fields of a chunked body are checked (syntax and limits) and dropped.
type BodyDecoder struct {
	state         bodyState
	remaining     int64 // of the Content-Length body or of the current chunk
	total         int64 // decoded bytes so far (chunked)
	maxBody       int64
	maxTrailer    int
	maxFields     int
	trailerBytes  int
	trailerFields int
}

// Reset prepares d for the body of the request whose head is h. A request with neither
// Content-Length nor chunked has an empty body and d is done at once.
func (d *BodyDecoder) Reset(h *RequestHead, lim *Limits) {
	*d = BodyDecoder{maxBody: lim.bodyBytes(), maxTrailer: lim.headBytes(), maxFields: lim.headers()}
	switch {
	case h.Chunked:
		d.state = chunkSize
	case h.ContentLength > 0:
		d.state = bodyLength
		d.remaining = h.ContentLength
	}
}

// ResetResponse prepares d for the body of the response whose head is h, sent to a
// request with the given method. Framing follows RFC 9112 6.3: no body after HEAD or with
// 1xx, 204 or 304; chunked; Content-Length; otherwise the body runs until the backend
// closes the connection (UntilClose). maxBody bounds the decoded body of a chunked or
// close-delimited body (over it: a 413 Error); a declared Content-Length over it is the
// caller's to refuse up front. maxBody <= 0 means no bound, for a streamed download.
func (d *BodyDecoder) ResetResponse(h *ResponseHead, method string, maxBody int64, lim *Limits) {
	if maxBody <= 0 {
		maxBody = 1<<63 - 1
	}
	*d = BodyDecoder{maxBody: maxBody, maxTrailer: lim.headBytes(), maxFields: lim.headers()}
	switch {
	case method == "HEAD" || h.Status < 200 || h.Status == 204 || h.Status == 304:
	case h.Chunked:
		d.state = chunkSize
	case h.ContentLength > 0:
		d.state = bodyLength
		d.remaining = h.ContentLength
	case h.ContentLength < 0:
		d.state = bodyUntilClose
	}
}

// Done reports whether the whole body has been decoded.
func (d *BodyDecoder) Done() bool { return d.state == bodyDone }

// UntilClose reports whether the body ends where the connection does: the end of the
// stream is then the body's end, not a truncation.
func (d *BodyDecoder) UntilClose() bool { return d.state == bodyUntilClose }

// Finish ends a body delimited by the connection's close, once the stream has ended.
func (d *BodyDecoder) Finish() {
	if d.state == bodyUntilClose {
		d.state = bodyDone
	}
}

// Decode consumes body bytes from the start of b. It returns after delivering one piece
// of body (data, a subslice of b: copy it if it must outlive b), when the body is done
// (done; the next request starts at b[consumed:]), or when it needs more bytes (no data,
// not done: everything usable in b was consumed, and the caller presents b[consumed:] again
// followed by more). So call it in a loop on b[consumed:] until it returns no data.
//
// Any error is an *Error (400 for bad framing, 413 over the body limit, 431 over the
// trailer limits) and the connection must be closed.
func (d *BodyDecoder) Decode(b []byte) (data []byte, consumed int, done bool, err error) {
	return d.DecodeUpTo(b, len(b))
}

// DecodeUpTo is Decode delivering at most max bytes of body per call, for a caller that
// copies it into a buffer of its own (BodyReader).
func (d *BodyDecoder) DecodeUpTo(b []byte, max int) (data []byte, consumed int, done bool, err error) {
	for {
		rest := b[consumed:]
		switch d.state {
		case bodyDone:
			return nil, consumed, true, nil

		case bodyUntilClose:
			n := min(len(rest), max)
			if int64(n) > d.maxBody-d.total {
				return nil, consumed, false, errf(413, "body over the %d byte limit", d.maxBody)
			}
			d.total += int64(n)
			return rest[:n], consumed + n, false, nil

		case bodyLength, chunkData:
			if len(rest) == 0 || max <= 0 {
				return nil, consumed, false, nil
			}
			n := min(int64(len(rest)), d.remaining, int64(max))
			d.remaining -= n
			consumed += int(n)
			if d.state == chunkData {
				d.total += n
				if d.remaining == 0 {
					d.state = chunkDataEnd
				}
			} else if d.remaining == 0 {
				d.state = bodyDone
			}
			return rest[:n], consumed, d.state == bodyDone, nil

		case chunkSize:
			lf := bytes.IndexByte(rest, '\n')
			if lf < 0 {
				if len(rest) >= maxChunkLine {
					return nil, consumed, false, errf(400, "chunk-size line longer than %d bytes", maxChunkLine)
				}
				return nil, consumed, false, nil
			}
			if lf+1 > maxChunkLine {
				return nil, consumed, false, errf(400, "chunk-size line longer than %d bytes", maxChunkLine)
			}
			if lf == 0 || rest[lf-1] != '\r' {
				return nil, consumed, false, errf(400, "bare LF in chunk-size line")
			}
			size, err := parseChunkSize(rest[:lf-1])
			if err != nil {
				return nil, consumed, false, err
			}
			if size > d.maxBody-d.total {
				return nil, consumed, false, errf(413, "chunked body over the %d byte limit", d.maxBody)
			}
			consumed += lf + 1
			if size == 0 {
				d.state = chunkTrailer
			} else {
				d.state, d.remaining = chunkData, size
			}

		case chunkDataEnd:
			if len(rest) < 2 {
				if len(rest) == 1 && rest[0] != '\r' {
					return nil, consumed, false, errf(400, "missing CRLF after chunk data, got %s", quoteByte(rest[0]))
				}
				return nil, consumed, false, nil
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return nil, consumed, false, errf(400, "missing CRLF after chunk data, got %q", rest[:2])
			}
			consumed += 2
			d.state = chunkSize

		case chunkTrailer:
			lf := bytes.IndexByte(rest, '\n')
			if lf < 0 {
				if d.trailerBytes+len(rest) > d.maxTrailer {
					return nil, consumed, false, errf(431, "trailer section larger than %d bytes", d.maxTrailer)
				}
				return nil, consumed, false, nil
			}
			d.trailerBytes += lf + 1
			if d.trailerBytes > d.maxTrailer {
				return nil, consumed, false, errf(431, "trailer section larger than %d bytes", d.maxTrailer)
			}
			if lf == 0 || rest[lf-1] != '\r' {
				return nil, consumed, false, errf(400, "bare LF in trailer section")
			}
			line := rest[:lf-1]
			consumed += lf + 1
			if len(line) == 0 {
				d.state = bodyDone
				continue
			}
			d.trailerFields++
			if d.trailerFields > d.maxFields {
				return nil, consumed, false, errf(431, "more than %d trailer fields", d.maxFields)
			}
			if err := checkField(line, "trailer"); err != nil {
				return nil, consumed, false, err
			}
		}
	}
}

// parseChunkSize parses "chunk-size [ chunk-ext ]" (without CRLF): 1*HEXDIG, then
// nothing or extensions, which are checked (checkChunkExt) and ignored. No sign, no "0x",
// no value over 2^60, and whitespace after the size only as the BWS before a ';'.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			goto ext
		}
		if n >= 1<<56 {
			return 0, errf(400, "chunk size %q overflows", clip(line))
		}
		n = n<<4 | int64(v)
	}
ext:
	if i == 0 {
		if len(line) == 0 {
			return 0, errf(400, "empty chunk size")
		}
		return 0, errf(400, "invalid byte %s in chunk size", quoteByte(line[0]))
	}
	if i == len(line) {
		return n, nil
	}
	if j := skipBWS(line, i); j == len(line) || line[j] != ';' {
		return 0, errf(400, "invalid byte %s in chunk size at offset %d", quoteByte(line[i]), i)
	}
	if err := checkChunkExt(line[i:]); err != nil {
		return 0, err
	}
	return n, nil
}

// checkChunkExt validates chunk extensions, which we otherwise ignore (RFC 9112 7.1.1):
//
//	chunk-ext     = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//	chunk-ext-val = token / quoted-string
//
// with quoted-pairs inside quoted strings. BWS is accepted as RFC 9110 5.6.3 requires;
// it cannot move the end of the line, which only CRLF decides. Parsers that honour quoted
// strings and parsers that do not disagree on where a line like `5;a="` ends, so an
// unterminated quote or a stray byte (whitespace included where BWS is not allowed) is
// refused, named by its offset, rather than skipped over. The chunk-size line limit
// (maxChunkLine) bounds the extensions' length.
func checkChunkExt(ext []byte) error {
	bad := func(i int) error {
		return errf(400, "invalid byte %s in chunk extension at offset %d", quoteByte(ext[i]), i)
	}
	// bws skips BWS that must be followed by something: whitespace that ends the line is
	// the stray byte.
	bws := func(i int) (int, error) {
		j := skipBWS(ext, i)
		if j == len(ext) && j > i {
			return j, bad(i)
		}
		return j, nil
	}
	i := 0
	for i < len(ext) {
		var err error
		if i, err = bws(i); err != nil {
			return err
		}
		if ext[i] != ';' {
			return bad(i)
		}
		if i, err = bws(i + 1); err != nil {
			return err
		}
		start := i
		for i < len(ext) && isTchar[ext[i]] {
			i++
		}
		if i == start {
			if i == len(ext) {
				return errf(400, "empty chunk extension name")
			}
			return bad(i)
		}
		if i == len(ext) {
			break
		}
		j, err := bws(i)
		if err != nil {
			return err
		}
		if ext[j] != '=' {
			i = j
			continue // the next extension's ';', or a stray byte the loop names
		}
		if i, err = bws(j + 1); err != nil {
			return err
		}
		switch {
		case i == len(ext):
			return errf(400, "empty chunk extension value")
		case ext[i] == '"':
			i++
			for {
				if i == len(ext) {
					return errf(400, "unterminated quoted string in chunk extension")
				}
				c := ext[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					i++
					if i == len(ext) {
						return errf(400, "unterminated quoted string in chunk extension")
					}
					c = ext[i]
				}
				if !isValueByte[c] {
					return bad(i)
				}
				i++
			}
		default:
			start := i
			for i < len(ext) && isTchar[ext[i]] {
				i++
			}
			if i == start {
				return bad(i)
			}
		}
	}
	return nil
}

// skipBWS returns the offset of the first byte at or after i that is not SP or HTAB.
func skipBWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// checkField validates a trailer line "name: value" without modifying it (it lies in the
// caller's read buffer).
func checkField(line []byte, what string) error {
	if line[0] == ' ' || line[0] == '\t' {
		return errf(400, "obsolete line folding in %s section", what)
	}
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	switch {
	case i == len(line):
		return errf(400, "%s line %q has no colon", what, clip(line))
	case line[i] == ' ' || line[i] == '\t':
		return errf(400, "whitespace between %s field name %q and colon", what, clip(line[:i]))
	case line[i] != ':':
		return errf(400, "invalid byte %s in %s field name %q", quoteByte(line[i]), what, clip(line[:i]))
	case i == 0:
		return errf(400, "empty %s field name", what)
	}
	v := line[i+1:]
	for j := 0; j < len(v); j++ {
		if !isValueByte[v[j]] {
			return errf(400, "invalid byte %s in %s field %q value", quoteByte(v[j]), what, clip(line[:i]))
		}
	}
	return nil
}
