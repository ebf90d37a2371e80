package http1

import (
	"strconv"
	"time"

	"github.com/mgw-project/mgw/codec"
)

// AppendResponseHead appends a status line and header section to dst and returns it.
//
// minor is the request's protocol minor version (it decides the framing; the status line
// always says HTTP/1.1, the version we implement, RFC 9110 6.2). hdr's fields are written
// in order with canonical-case names; the fields that frame or describe the connection
// (Content-Length, Transfer-Encoding, Connection and the other hop-by-hop fields) are
// skipped because this function writes its own, and a field whose name is not a token or
// whose value holds CR, LF or another control byte is skipped so no header can split the
// response. A final response gets a Date field (RFC 9110 6.6.1: an origin server with a
// clock must send one) unless hdr has one, as a backend's answer passed on does.
//
// contentLength >= 0 writes Content-Length. contentLength < 0 means the length is unknown:
// for HTTP/1.1 the body must follow as AppendChunk pieces and AppendLastChunk; for
// HTTP/1.0 the body is delimited by closing the connection, so keep-alive is turned off.
// 1xx, 204 and 304 responses get no framing fields and must have no body. The connection
// field says close unless keepAlive (and, for 1.0, keep-alive when keepAlive): use
// ResponseKeepAlive to learn whether the connection may be reused after this response.
func AppendResponseHead(dst []byte, minor, status int, hdr codec.Header, contentLength int64, keepAlive bool) []byte {
	status = clampStatus(status)
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(status)...)
	dst = append(dst, "\r\n"...)
	dated := status < 200 // 1xx may omit it
	for _, f := range hdr {
		if !writableField(f) {
			continue
		}
		dated = dated || equalFoldASCII(f.Key, "date")
		dst = appendCanonical(dst, f.Key)
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	if !dated {
		dst = append(dst, "Date: "...)
		dst = time.Now().UTC().AppendFormat(dst, imfFixdate)
		dst = append(dst, "\r\n"...)
	}
	if bodyAllowed(status) {
		switch {
		case contentLength >= 0:
			dst = append(dst, "Content-Length: "...)
			dst = strconv.AppendInt(dst, contentLength, 10)
			dst = append(dst, "\r\n"...)
		case minor >= 1:
			dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
		}
	}
	switch {
	case !ResponseKeepAlive(minor, status, contentLength, keepAlive):
		dst = append(dst, "Connection: close\r\n"...)
	case minor == 0:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// imfFixdate is the HTTP date format (RFC 9110 5.6.7), net/http's TimeFormat.
const imfFixdate = "Mon, 02 Jan 2006 15:04:05 GMT"

// ResponseKeepAlive reports whether the connection may carry another request after a
// response written by AppendResponseHead with these arguments: keepAlive, unless the
// body is close-delimited (length unknown for an HTTP/1.0 client).
func ResponseKeepAlive(minor, status int, contentLength int64, keepAlive bool) bool {
	status = clampStatus(status)
	if contentLength < 0 && minor == 0 && bodyAllowed(status) {
		return false
	}
	return keepAlive
}

// AppendResponse appends a whole response with r.Body as its body (Content-Length
// framing). When r.Gzip is set and r.Header has no Content-Encoding, it adds
// Content-Encoding: gzip. For a 1xx, 204 or 304 status the body is not written. For an
// answer to HEAD, use AppendResponseHeadOnly.
func AppendResponse(dst []byte, minor int, r *codec.Response, keepAlive bool) []byte {
	dst = AppendResponseHeadOnly(dst, minor, r, keepAlive)
	return appendBody(dst, r)
}

// AppendResponseHeadOnly appends what AppendResponse would, without the body: the answer
// to a HEAD request. Content-Length stays the length of r.Body, the one a GET would have
// had (RFC 9110 9.3.2); sending the body would be read as the start of the next response
// on the connection (RFC 9112 6.3).
func AppendResponseHeadOnly(dst []byte, minor int, r *codec.Response, keepAlive bool) []byte {
	if r.Gzip {
		if _, ok := r.Header.Get("content-encoding"); !ok {
			return appendHeadWithGzip(dst, minor, r, keepAlive)
		}
	}
	return AppendResponseHead(dst, minor, r.Status, r.Header, int64(len(r.Body)), keepAlive)
}

func appendHeadWithGzip(dst []byte, minor int, r *codec.Response, keepAlive bool) []byte {
	// Build on a short-lived copy of the fields rather than appending to r.Header, whose
	// backing array may be shared with the caller.
	hdr := make(codec.Header, 0, len(r.Header)+1)
	hdr = append(hdr, r.Header...)
	hdr = append(hdr, codec.Field{Key: "content-encoding", Value: "gzip"})
	return AppendResponseHead(dst, minor, r.Status, hdr, int64(len(r.Body)), keepAlive)
}

func appendBody(dst []byte, r *codec.Response) []byte {
	if !bodyAllowed(clampStatus(r.Status)) {
		return dst
	}
	return append(dst, r.Body...)
}

// AppendChunk appends p as one chunk of a chunked body. An empty p appends nothing: a
// zero-size chunk would end the body (that is AppendLastChunk).
func AppendChunk(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(len(p)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, p...)
	return append(dst, "\r\n"...)
}

// AppendLastChunk appends the zero-size chunk and empty trailer that end a chunked body.
func AppendLastChunk(dst []byte) []byte { return append(dst, "0\r\n\r\n"...) }

// Append100Continue appends the interim response that tells a client sending
// Expect: 100-continue to go on with the body.
func Append100Continue(dst []byte) []byte { return append(dst, "HTTP/1.1 100 Continue\r\n\r\n"...) }

// clampStatus turns a status that cannot go on a status line (it needs three digits) into
// 500: it is the gateway's bug, not the client's.
func clampStatus(status int) int {
	if status < 100 || status > 999 {
		return 500
	}
	return status
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != 204 && status != 304
}

// writableField reports whether f may be copied into a response head we frame ourselves.
func writableField(f codec.Field) bool {
	if f.Key == "" || IsHopByHop(f.Key) || equalFoldASCII(f.Key, "content-length") {
		return false
	}
	for i := 0; i < len(f.Key); i++ {
		if !isTchar[f.Key[i]] {
			return false
		}
	}
	for i := 0; i < len(f.Value); i++ {
		if !isValueByte[f.Value[i]] {
			return false
		}
	}
	return true
}

// appendCanonical writes a field name in the customary case (content-type →
// Content-Type), which some mobile HTTP stacks still compare case-sensitively.
func appendCanonical(dst []byte, key string) []byte {
	if s, ok := specialCase(key); ok {
		return append(dst, s...)
	}
	up := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		if up && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !up && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
		up = c == '-'
	}
	return dst
}

// specialCase covers the common names whose customary spelling is not plain
// capitalisation.
func specialCase(key string) (string, bool) {
	switch len(key) {
	case 4:
		if equalFoldASCII(key, "etag") {
			return "ETag", true
		}
	case 16:
		if equalFoldASCII(key, "www-authenticate") {
			return "WWW-Authenticate", true
		}
	case 11:
		if equalFoldASCII(key, "content-md5") {
			return "Content-MD5", true
		}
	}
	return "", false
}
