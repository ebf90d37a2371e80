package codec

import "sync"

// PooledBodyMax is the largest answer body kept in the body pool.
const PooledBodyMax = 4096

// bodyPool holds answer bodies of up to PooledBodyMax bytes for reuse: an API call's
// answer body is the largest allocation of its path (a 1 KiB answer is 40 % of the bytes
// a call allocates), and the garbage collector's work grows with those bytes.
var bodyPool = sync.Pool{New: func() any {
	b := make([]byte, 0, PooledBodyMax)
	return &b
}}

// PooledBody returns an empty buffer with room for PooledBodyMax bytes, for an answer's
// body; SetPooledBody gives it to the answer.
func PooledBody() *[]byte { return bodyPool.Get().(*[]byte) }

// SetPooledBody makes the bytes of p (from PooledBody) r's body, which ReleaseBody gives
// back once they have gone out.
func (r *Response) SetPooledBody(p *[]byte) {
	r.Body = *p
	r.pooled = p
}

// ReleaseBody gives r's pooled body back, if it has one; r's Body is nil after. Only the
// last user of r calls it: the writer that has copied the answer onto the wire. A body a
// filter put in place of the pooled one is left to the garbage collector, and the pooled
// one still goes back: nobody else holds it.
func (r *Response) ReleaseBody() {
	p := r.pooled
	if p == nil {
		return
	}
	r.pooled, r.Body = nil, nil
	PutPooledBody(p)
}

// PutPooledBody gives back a buffer from PooledBody whose bytes nobody uses any more.
func PutPooledBody(p *[]byte) {
	*p = (*p)[:0]
	bodyPool.Put(p)
}
