// Package http1 is the HTTP/1.1 wire format (RFC 9112) for the gateway: an incremental,
// strict request parser, body framing, a response writer, and the hop-by-hop rules a
// proxy applies. It does no I/O: the reactor hands a handler whatever bytes arrived, the
// handler runs them through ParseHead and BodyDecoder and reports how many it consumed,
// and the reactor keeps the rest until more arrive.
//
// Driving it, per connection (one goroutine at a time, as the reactor guarantees):
//
//	n, err := ParseHead(buf, lim, &c.head) // n == 0, err == nil: need more bytes
//	c.body.Reset(&c.head, lim)
//	data, used, done, err := c.body.Decode(buf[n:]) // loop until done or no data
//	req := ToRequest(&c.head, ownedBody, connInfo)
//
// Any error is an *Error carrying the status to answer (400, 413, 431, 501, 505); write
// AppendResponse of it with keep-alive off and close the connection, because after a
// framing error nobody knows where the next request starts.
//
// Strictness is deliberate: everything that lets two parsers disagree about where a
// request ends (Content-Length with Transfer-Encoding, conflicting lengths, codings other
// than a single chunked, obs-fold, whitespace before a colon, bare LF, sloppy chunk sizes)
// is refused. diff_test.go lists every way we are stricter than net/http.
package http1
