package mmtp

import "github.com/mgw-project/mgw/codec"

// ToRequest turns a REQUEST (or HELLO) frame into a codec.Request that owns its memory, so
// it may outlive the read buffer f points into. Operation is the `operation-type` value
// ("" when absent: the caller answers 400); Gzip follows the GZIP flag; Received is left
// for the caller to stamp. It costs four allocations
// whatever the header count: the Request, one string holding the whole header block (keys
// and values are substrings of it), the Header slice, and the body copy.
func ToRequest(f *Frame, conn codec.ConnInfo) *codec.Request {
	r := &codec.Request{
		Protocol: codec.MMTP,
		StreamID: f.StreamID,
		Gzip:     f.Gzip(),
		Conn:     conn,
	}
	if len(f.Header) > 0 {
		block := string(f.Header)
		r.Header = make(codec.Header, 0, f.Entries)
		for p := 0; p < len(block); {
			kl := int(block[p])
			vl := int(block[p+1+kl])<<8 | int(block[p+2+kl])
			k := block[p+1 : p+1+kl]
			v := block[p+3+kl : p+3+kl+vl]
			r.Header = append(r.Header, codec.Field{Key: k, Value: v})
			if k == "operation-type" {
				r.Operation = v
			}
			p += 3 + kl + vl
		}
	}
	if len(f.Body) > 0 {
		r.Body = append([]byte(nil), f.Body...)
	}
	return r
}
