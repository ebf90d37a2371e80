package codec

import "testing"

// A pooled body goes back once: ReleaseBody empties the answer, and a second call (or one
// on an answer whose body is not pooled, like the gateway's shared error answers) leaves
// everything as it is.
func TestReleaseBody(t *testing.T) {
	p := PooledBody()
	if len(*p) != 0 || cap(*p) < PooledBodyMax {
		t.Fatalf("pooled buffer: len %d cap %d", len(*p), cap(*p))
	}
	*p = append(*p, "answer"...)
	r := &Response{Status: 200}
	r.SetPooledBody(p)
	if string(r.Body) != "answer" {
		t.Fatalf("body %q", r.Body)
	}
	r.ReleaseBody()
	if r.Body != nil || r.pooled != nil {
		t.Fatalf("after release: body %q, pooled %v", r.Body, r.pooled)
	}
	r.Body = []byte("a filter's")
	r.ReleaseBody()
	if string(r.Body) != "a filter's" {
		t.Fatalf("a body that is not pooled was taken: %q", r.Body)
	}
	shared := ErrorResponse(503, ErrUnavailable, "overloaded")
	shared.ReleaseBody()
	if string(shared.Body) != "overloaded" {
		t.Fatalf("a gateway answer lost its body: %q", shared.Body)
	}
}
