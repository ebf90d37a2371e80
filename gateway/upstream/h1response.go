package upstream

import (
	"bufio"
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
	maxInterim       = 5 // 1xx answers accepted before the final one
)

// respLimits are the codec's limits for a backend's answer head and trailers.
var respLimits = http1.Limits{MaxHeadBytes: maxRespHeadBytes, MaxHeaders: maxRespFields}

// h1Response is a backend's whole answer to a Call, in the codec's form.
type h1Response struct {
	status    int
	header    codec.Header // lowercased, hop-by-hop and framing fields dropped, sorted
	gzip      bool         // Content-Encoding was exactly gzip (and is not in header)
	body      []byte       // nil when empty
	keepAlive bool         // the connection may carry another request
}

var errRespMalformed = errors.New("malformed response")

// readResponse reads one response to a request whose method allows a body (Call sends
// POST) from br, skipping interim 1xx answers. The body is read whole, up to maxBody
// (over it: errTooLarge).
func readResponse(br *bufio.Reader, maxBody int64) (*h1Response, error) {
	var h http1.ResponseHead
	if err := readFinalHead(br, &h, nil); err != nil {
		return nil, err
	}
	r := &h1Response{status: h.Status, keepAlive: h.KeepAlive}
	var d http1.BodyDecoder
	if err := startBody(&h, &d, maxBody); err != nil {
		return nil, err
	}
	if d.UntilClose() {
		r.keepAlive = false
	}
	var err error
	body := http1.NewBodyReader(br, &d)
	switch {
	case d.Done():
	case h.ContentLength > 0 && !h.Chunked:
		r.body = make([]byte, h.ContentLength)
		_, err = io.ReadFull(body, r.body)
	default:
		r.body, err = io.ReadAll(body)
	}
	if err != nil {
		return nil, bodyError(err)
	}
	if len(r.body) == 0 {
		r.body = nil
	}
	r.header, r.gzip = codecHeader(h.Header, h.Connection)
	return r, nil
}

// readFinalHead reads response heads until a final (non-1xx) one. Each interim head
// checkInterim lets pass goes to interim, when set, before the next head is read into h.
func readFinalHead(br *bufio.Reader, h *http1.ResponseHead, interim func(*http1.ResponseHead)) error {
	for n := 0; ; n++ {
		if err := http1.ReadResponseHead(br, &respLimits, h); err != nil {
			switch {
			case err == io.EOF:
				return fmt.Errorf("backend closed the connection before answering: %w", io.ErrUnexpectedEOF)
			case err == io.ErrUnexpectedEOF:
				return fmt.Errorf("response head: %w", err)
			}
			return headError(err)
		}
		if h.Status >= 200 {
			return nil
		}
		if err := checkInterim(h.Status, n+1); err != nil {
			return err
		}
		if interim != nil {
			interim(h)
		}
	}
}

// checkInterim checks an interim (1xx) answer, the n-th of its exchange: it is passed on
// (a forwarded request) or skipped (a Call), unless it is a 101 (no upgrade was asked
// for) or one too many.
func checkInterim(status, n int) error {
	if status == 101 {
		return fmt.Errorf("%w: 101 Switching Protocols to a request that asked for no upgrade", errRespMalformed)
	}
	if n > maxInterim {
		return fmt.Errorf("%w: more than %d interim 1xx answers", errRespMalformed, maxInterim)
	}
	return nil
}

// startBody readies d for the body of h, the final answer to a Call's POST, and refuses
// up front a declared length over maxBody (chunked and close-delimited bodies are
// bounded by d as they come).
func startBody(h *http1.ResponseHead, d *http1.BodyDecoder, maxBody int64) error {
	d.ResetResponse(h, "POST", maxBody, &respLimits)
	if h.ContentLength > maxBody && !h.Chunked && !d.Done() {
		return errTooLarge
	}
	return nil
}

// headError makes the codec's verdict on a backend's bytes a malformed-response error.
func headError(err error) error {
	if e := http1.AsError(err); e != nil {
		return fmt.Errorf("%w: %s", errRespMalformed, e.Reason)
	}
	return err
}

// bodyError is headError for a response body, where the codec's 413 is our size limit.
func bodyError(err error) error {
	if e := http1.AsError(err); e != nil && e.Status == 413 {
		return errTooLarge
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("response body: %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("response body: %w", headError(err))
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
		if http1.IsHopByHop(k) || http1.IsConnectionToken(conn, k) || k == "content-length" {
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
