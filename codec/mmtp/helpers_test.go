package mmtp

import "github.com/mgw-project/mgw/codec"

// hdr builds a header from key, value pairs.
func hdr(kv ...string) codec.Header {
	h := make(codec.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, codec.Field{Key: kv[i], Value: kv[i+1]})
	}
	return h
}
