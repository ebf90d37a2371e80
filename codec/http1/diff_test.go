package http1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// This file compares our parser with net/http's (http.ReadRequest on a bufio.Reader plus
// reading the body) on the same bytes. Where both accept a request they must agree on
// method, target, Host, every header field, framing, keep-alive and body. Where only one
// accepts, the reason must fall in one of the classes below; anything else is a bug in one
// of the two parsers and fails the test.
//
// Intentional differences where we are stricter than net/http (we reject, it accepts):
//   - bare LF line endings (it accepts LF alone, we require CRLF: smuggling surface);
//   - obs-fold continuation lines and whitespace (or other non-token bytes) between a
//     field name and the colon, which it tolerates and RFC 9112 5.1/5.2 says to reject;
//   - request-target bytes: control bytes, non-ASCII, '#', malformed percent-encoding,
//     and the target forms of RFC 9112 3.2 (a relative target, "*" with a method other
//     than OPTIONS, CONNECT without host:port);
//   - HTTP versions with a major other than 1 (505), which it parses generically;
//   - missing or repeated Host in HTTP/1.1, and Host values that are not RFC 3986
//     host[:port] (net/http checks these in its server, not in ReadRequest);
//   - Transfer-Encoding in an HTTP/1.0 request (it ignores the field there, we refuse the
//     ambiguity; an unknown coding there is our 501), chunked with parameters;
//   - chunk-size lines with whitespace after the size that is not BWS before a ";", and
//     chunk extensions holding control bytes or malformed quoted strings;
//   - trailer fields that are malformed (it reads them with textproto rules) and trailer
//     or header sections over our limits (its limits are larger);
//   - an empty-element Content-Length/Transfer-Encoding list;
//   - bytes it tolerates in field values that RFC 9110 5.5 forbids.
//
// Differences where we accept and it rejects:
//   - Content-Length as a list of identical values in one field ("5, 5"), which RFC 9110
//     8.6 allows a recipient to collapse (it collapses only repeated fields);
//   - empty lines before the request line, which RFC 9112 2.2 tells a server to skip
//     (it skips them in its server loop, not in ReadRequest);
//   - BWS in chunk extensions ("5 ; a = b"), which the RFC 9112 7.1.1 grammar allows and
//     RFC 9110 5.6.3 tells a recipient to accept (its chunked reader trims whitespace
//     only at the end of the line, so "5 " is left before the ";"). The gateway decodes
//     and re-frames every body, so no second parser ever sees these lines.

// stdRequest is the result of net/http's parser in our terms.
type stdRequest struct {
	method, target, host string
	header               map[string][]string // lowercase keys
	contentLength        int64
	chunked, keepAlive   bool
	body                 []byte
}

// readStd reads the next request from br with net/http, body included.
func readStd(br *bufio.Reader) (*stdRequest, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, DefaultMaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	r := &stdRequest{
		method: req.Method, target: req.RequestURI, host: req.Host,
		header:        map[string][]string{},
		contentLength: req.ContentLength,
		chunked:       slices.Contains(req.TransferEncoding, "chunked"),
		keepAlive:     !req.Close,
		body:          body,
	}
	for k, v := range req.Header {
		r.header[strings.ToLower(k)] = v
	}
	return r, nil
}

func newStdReader(in []byte) *bufio.Reader {
	return bufio.NewReader(bytes.NewReader(in))
}

// compareStd reports how ours and net/http's results differ, or "" when they agree.
func compareStd(ours parsed, std *stdRequest) string {
	h := &ours.head
	var diffs []string
	add := func(what string, a, b any) {
		diffs = append(diffs, fmt.Sprintf("%s: ours %q, net/http %q", what, a, b))
	}
	if h.Method != std.method {
		add("method", h.Method, std.method)
	}
	if h.Target != std.target {
		add("target", h.Target, std.target)
	}
	if h.Host != std.host {
		add("host", h.Host, std.host)
	}
	if h.Chunked != std.chunked {
		add("chunked", h.Chunked, std.chunked)
	}
	if !h.Chunked && max(h.ContentLength, 0) != std.contentLength {
		add("content-length", h.ContentLength, std.contentLength)
	}
	if h.KeepAlive != std.keepAlive {
		add("keep-alive", h.KeepAlive, std.keepAlive)
	}
	if !bytes.Equal(ours.body, std.body) {
		add("body", ours.body, std.body)
	}
	// Fields net/http moves out of Header (Host, Transfer-Encoding, Trailer of a chunked
	// request) or rewrites (repeated Content-Length collapsed; Cache-Control added for
	// Pragma: no-cache) are compared through the semantics above instead.
	skip := func(k string) bool {
		return k == "host" || k == "transfer-encoding" || k == "content-length" || k == "cache-control" || k == "trailer"
	}
	mine := map[string][]string{}
	for _, f := range h.Header {
		if !skip(f.Key) {
			mine[f.Key] = append(mine[f.Key], f.Value)
		}
	}
	for k, v := range std.header {
		if !skip(k) && !slices.Equal(v, mine[k]) {
			add("field "+k, mine[k], v)
		}
	}
	for k, v := range mine {
		if _, ok := std.header[k]; !ok {
			add("field "+k, v, nil)
		}
	}
	return strings.Join(diffs, "; ")
}

// differential runs both parsers over all the pipelined requests in in. It returns a
// non-empty string when they disagree in a way no documented class above explains.
func differential(in []byte) string {
	ours, _, ourErr := parseStream(in, nil, whole)
	br := newStdReader(in)
	for i := 0; ; i++ {
		std, stdErr := readStd(br)
		if i == len(ours) {
			// Ours stopped here (an error or an incomplete request). Being stricter is
			// allowed, but every rejection must be an *Error.
			if ourErr != nil && AsError(ourErr) == nil {
				return fmt.Sprintf("request %d: non-*Error rejection: %v", i, ourErr)
			}
			if ourErr == nil && stdErr == nil {
				// We wait for more bytes where net/http saw a whole request: one of us
				// has the framing wrong.
				return fmt.Sprintf("request %d: complete for net/http, incomplete for us", i)
			}
			return ""
		}
		if stdErr != nil {
			if stdErr == io.EOF || stdErr == io.ErrUnexpectedEOF {
				return fmt.Sprintf("request %d: complete for us, incomplete for net/http (%v)", i, stdErr)
			}
			if weAcceptTheyReject(in[ours[i].off:], ours[i]) {
				return ""
			}
			return fmt.Sprintf("request %d: we accept, net/http rejects: %v", i, stdErr)
		}
		if d := compareStd(ours[i], std); d != "" {
			return fmt.Sprintf("request %d: %s", i, d)
		}
	}
}

// weAcceptTheyReject recognises the documented cases where we accept and net/http does
// not.
func weAcceptTheyReject(in []byte, ours parsed) bool {
	if bytes.HasPrefix(in, []byte("\r\n")) {
		return true
	}
	if v, ok := ours.head.Header.Get("content-length"); ok && strings.Contains(v, ",") {
		return true
	}
	if ours.head.Chunked && chunkLinesHaveBWS(in) {
		return true
	}
	return false
}

// chunkLinesHaveBWS reports whether a chunk-size line of the chunked request at the start
// of in (head included) holds whitespace.
func chunkLinesHaveBWS(in []byte) bool {
	_, b, ok := bytes.Cut(in, []byte("\r\n\r\n"))
	for ok {
		var line []byte
		line, b, ok = bytes.Cut(b, []byte("\r\n"))
		if bytes.ContainsAny(line, " \t") {
			return true
		}
		size := 0
		for _, c := range line {
			v := strings.IndexByte("0123456789abcdef", lower(c))
			if v < 0 || size > 1<<24 {
				break
			}
			size = size<<4 | v
		}
		if size == 0 || size+2 > len(b) {
			return false
		}
		b = b[size+2:]
	}
	return false
}
