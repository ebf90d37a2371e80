package client

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/mgw-project/mgw/codec/http1"
	"github.com/mgw-project/mgw/netpoll"
)

// maxResponseHead bounds a response head; a target sending more is not the gateway.
const maxResponseHead = 64 << 10

// httpRequests builds `POST /api/<op>` requests; the bytes never change, so they are made
// once (signing is an MMTP feature of this harness).
type httpRequests struct {
	req []byte
}

func newHTTPRequests(cfg *Config) *httpRequests {
	var b []byte
	b = append(b, "POST /api/"...)
	b = append(b, cfg.API...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, cfg.Target...)
	b = append(b, "\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(cfg.Body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, cfg.Body...)
	return &httpRequests{req: b}
}

func (h *httpRequests) build(dst []byte, _ *conn, _ uint32) []byte { return append(dst, h.req...) }

// onHTTP consumes whole responses (head and body) from data, matching each to the oldest
// request in flight.
func (cn *conn) onHTTP(c netpoll.Conn, data []byte) (int, error) {
	off := 0
	var rt readTimes // the read's (answered)
	for off < len(data) {
		if !cn.inBody {
			end := bytes.Index(data[off:], []byte("\r\n\r\n"))
			if end < 0 {
				if len(data)-off > maxResponseHead {
					cn.cl.countErr(ErrProtocol, 1)
					return off, fmt.Errorf("response head over %d bytes", maxResponseHead)
				}
				return off, nil
			}
			status, cl, chunked, err := parseResponseHead(data[off : off+end])
			if err != nil {
				cn.cl.countErr(ErrProtocol, 1)
				return off, err
			}
			off += end + 4
			if status < 200 { // 1xx: an interim answer, the real one follows
				continue
			}
			cn.status = status
			cn.inBody = true
			cn.body.Reset(&http1.RequestHead{ContentLength: cl, Chunked: chunked}, nil)
		}
		for !cn.body.Done() {
			d, n, done, err := cn.body.Decode(data[off:])
			off += n
			if err != nil {
				cn.cl.countErr(ErrProtocol, 1)
				return off, fmt.Errorf("response body: %w", err)
			}
			if done {
				break
			}
			if len(d) == 0 {
				return off, nil // needs more bytes
			}
		}
		cn.inBody = false
		cn.mu.Lock()
		if len(cn.fifo) == 0 {
			cn.mu.Unlock()
			cn.cl.countErr(ErrProtocol, 1)
			return off, fmt.Errorf("response %d with no request in flight", cn.status)
		}
		r := cn.fifo[0]
		cn.fifo = cn.fifo[1:]
		cn.mu.Unlock()
		if !r.intended.IsZero() { // zero: already counted as a timeout
			if rt.ready.IsZero() {
				rt = cn.readTimes(c)
			}
			cn.answered(r.intended, r.at, &rt, cn.status)
		}
	}
	return off, nil
}

// parseResponseHead reads the status and body framing out of a response head (without the
// final blank line).
func parseResponseHead(h []byte) (status int, contentLength int64, chunked bool, err error) {
	line, rest, _ := bytes.Cut(h, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, false, fmt.Errorf("target did not answer HTTP/1.x: status line %q", clip(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return 0, 0, false, fmt.Errorf("status line %q: bad status code", clip(line))
	}
	contentLength = -1
	for len(rest) > 0 {
		var f []byte
		f, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, v, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			return 0, 0, false, fmt.Errorf("header line %q: no colon", clip(f))
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("content-length")):
			n, perr := strconv.ParseInt(string(v), 10, 64)
			if perr != nil || n < 0 {
				return 0, 0, false, fmt.Errorf("content-length %q: not a length", clip(v))
			}
			contentLength = n
		case bytes.EqualFold(k, []byte("transfer-encoding")):
			chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		}
	}
	if status == 204 || status == 304 {
		contentLength, chunked = 0, false
	}
	return status, contentLength, chunked, nil
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
