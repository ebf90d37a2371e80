package http1

// Default limits; the zero Limits (or a nil *Limits) means these.
const (
	DefaultMaxHeadBytes = 16 << 10
	DefaultMaxHeaders   = 100
	DefaultMaxBodyBytes = 4 << 20
)

// maxChunkLine bounds a chunk-size line (size plus extensions) so an endless extension
// cannot make us wait for bytes forever; no sane client sends extensions this long.
const maxChunkLine = 4096

// Limits bound what one request may cost. A zero field takes its default.
type Limits struct {
	// MaxHeadBytes bounds the request line plus header fields plus the final CRLF; over it
	// (even while the head is still incomplete) the request fails with 431, or with 414
	// when the request line alone is over it (there is no separate request-line limit:
	// a target as long as the whole head budget is already one no backend wants). It also
	// bounds the trailer section of a chunked body.
	MaxHeadBytes int
	// MaxHeaders bounds the number of header fields (and trailer fields); over it: 431.
	MaxHeaders int
	// MaxBodyBytes bounds the decoded body; over it: 413 (known up front for
	// Content-Length, as soon as a chunk size passes it for chunked).
	MaxBodyBytes int64
}

func (l *Limits) headBytes() int {
	if l == nil || l.MaxHeadBytes <= 0 {
		return DefaultMaxHeadBytes
	}
	return l.MaxHeadBytes
}

func (l *Limits) headers() int {
	if l == nil || l.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return l.MaxHeaders
}

func (l *Limits) bodyBytes() int64 {
	if l == nil || l.MaxBodyBytes <= 0 {
		return DefaultMaxBodyBytes
	}
	return l.MaxBodyBytes
}
