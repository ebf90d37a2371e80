package mmtp

// Default limits (mmtp.md, "Limits").
const (
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxEntries     = 64
)

// Limits bound what one frame may carry. A zero field means its default; a nil *Limits
// means DefaultLimits. Limits are read-only once handed to Parse or a Decoder, so one value
// may be shared by every connection of a listener.
type Limits struct {
	MaxHeaderBytes int // header block (H) bytes; capped at 65535 by the wire format
	MaxBodyBytes   int // body (B) bytes
	MaxEntries     int // header entries
}

// DefaultLimits returns the gateway defaults: 16 KiB header block, 4 MiB body, 64 entries.
func DefaultLimits() Limits {
	return Limits{MaxHeaderBytes: DefaultMaxHeaderBytes, MaxBodyBytes: DefaultMaxBodyBytes, MaxEntries: DefaultMaxEntries}
}

// Effective returns the limits in force: defaults for a nil receiver or zero fields.
func (l *Limits) Effective() Limits { return l.orDefault() }

// orDefault resolves nil and zero fields, without allocating.
func (l *Limits) orDefault() Limits {
	d := DefaultLimits()
	if l == nil {
		return d
	}
	r := *l
	if r.MaxHeaderBytes <= 0 {
		r.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if r.MaxBodyBytes <= 0 {
		r.MaxBodyBytes = d.MaxBodyBytes
	}
	if r.MaxEntries <= 0 {
		r.MaxEntries = d.MaxEntries
	}
	return r
}

// MaxFrameLen is the largest frame these limits admit, for sizing buffers.
func (l *Limits) MaxFrameLen() int {
	r := l.orDefault()
	return HeaderSize + r.MaxHeaderBytes + r.MaxBodyBytes
}
