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
//   - HTTP versions other than 1.0 and 1.1 (505), which it parses generically;
//   - missing or repeated Host in HTTP/1.1, and Host values that are not RFC 3986
//     host[:port] (net/http checks these in its server, not in ReadRequest);
//   - Transfer-Encoding in an HTTP/1.0 request (it ignores the field there, we refuse the
//     ambiguity; an unknown coding there is our 501), chunked with parameters;
//   - chunk-size lines with whitespace after the size (even before a ";"), and chunk
//     extensions holding control bytes;
//   - trailer fields that are malformed (it reads them with textproto rules) and trailer
//     or header sections over our limits (its limits are larger);
//   - an empty-element Content-Length/Transfer-Encoding list;
//   - bytes it tolerates in field values that RFC 9110 5.5 forbids.
//
// Differences where we accept and it rejects:
//   - Content-Length as a list of identical values in one field ("5, 5"), which RFC 9110
//     8.6 allows a recipient to collapse (it collapses only repeated fields);
//   - empty lines before the request line, which RFC 9112 2.2 tells a server to skip
//     (it skips them in its server loop, not in ReadRequest).

// stdRequest is the result of net/http's parser in our terms.
type stdRequest struct {
	method, target, host string
	header               map[string][]string // lowercase keys
	contentLength        int64
	chunked, keepAlive   bool
	body                 []byte
}

func parseStd(in []byte) (*stdRequest, int, error) {
	br := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, 0, err
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, DefaultMaxBodyBytes+1))
	if err != nil {
		return nil, 0, err
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
	consumed := len(in) - br.Buffered()
	return r, consumed, nil
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

// oursFirst parses the first request of in with our parser, whole.
func oursFirst(in []byte) (parsed, bool, error) {
	reqs, _, err := parseStream(in, nil, whole)
	if len(reqs) > 0 {
		return reqs[0], true, nil
	}
	return parsed{}, false, err
}

// differential runs both parsers on in. It returns a non-empty string when they disagree
// in a way no documented class above explains.
func differential(in []byte) string {
	ours, ok, ourErr := oursFirst(in)
	std, _, stdErr := parseStd(in)
	switch {
	case ok && stdErr == nil:
		return compareStd(ours, std)
	case ok && stdErr != nil:
		if weAcceptTheyReject(in, ours) {
			return ""
		}
		return fmt.Sprintf("we accept, net/http rejects: %v", stdErr)
	case !ok && ourErr != nil && stdErr == nil:
		// We are allowed to be stricter, but every rejection must be one of ours.
		if AsError(ourErr) == nil {
			return fmt.Sprintf("non-*Error rejection: %v", ourErr)
		}
		return ""
	}
	return ""
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
	return false
}
