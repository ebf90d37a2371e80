package mmtp

import (
	"bytes"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// typicalRequest is a small REQUEST as a mobile app sends it: 5 headers, 100-byte body.
func typicalRequest() []byte {
	h := hdr("app-id", "wallet", "device-id", "0f3c9a1e-77d2-4b8e-9c41-5a2f0e6d8b13",
		"timestamp", "1700000000000", "nonce", "6b1f0c2a9e4d7f3a", "sign", string(bytes.Repeat([]byte("ab"), 32)))
	return AppendRequest(nil, 7, "alipay.trade.pay", h, bytes.Repeat([]byte("x"), 100), false)
}

func typicalResponse() *codec.Response {
	return &codec.Response{Status: 200,
		Header: hdr("content-type", "application/json", "trace-id", "4bf92f3577b34da6a3ce929d0e0e4736", "x-cluster", "decentralized"),
		Body:   bytes.Repeat([]byte("y"), 200)}
}

// TestSteadyStateAllocations pins the zero-allocation contract of the hot paths.
func TestSteadyStateAllocations(t *testing.T) {
	b := typicalRequest()
	var sink int
	if n := testing.AllocsPerRun(200, func() {
		f, _, err := Parse(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := f.Get("operation-type")
		f.Each(func(k, v []byte) bool { sink += len(v); return true })
		sink += len(v)
		_ = CheckClientFrame(&f)
	}); n != 0 {
		t.Fatalf("Parse+Get+Each: %v allocs per frame, want 0", n)
	}
	dst := make([]byte, 0, 4096)
	r := typicalResponse()
	if n := testing.AllocsPerRun(200, func() {
		dst = AppendResponse(dst[:0], 7, r)
		dst = AppendGoAway(dst[:0], 7, ReasonShutdown)
		dst = AppendPong(dst[:0], []byte("12345678"))
	}); n != 0 {
		t.Fatalf("encoders: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		f, _, _ := Parse(b, nil)
		_ = ToRequest(&f, codec.ConnInfo{})
	}); n > 4 {
		t.Fatalf("ToRequest: %v allocs, want at most 4", n)
	}
	_ = sink
}

func BenchmarkParseRequest(b *testing.B) {
	buf := typicalRequest()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		f, _, err := Parse(buf, nil)
		if err != nil {
			b.Fatal(err)
		}
		if v, ok := f.Get("operation-type"); !ok || len(v) == 0 {
			b.Fatal("no operation-type")
		}
	}
}

func BenchmarkToRequest(b *testing.B) {
	buf := typicalRequest()
	b.ReportAllocs()
	for b.Loop() {
		f, _, _ := Parse(buf, nil)
		_ = ToRequest(&f, codec.ConnInfo{})
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	r := typicalResponse()
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendResponse(dst[:0], 7, r)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkDecoderStream(b *testing.B) {
	one := typicalRequest()
	var stream []byte
	for i := 0; i < 64; i++ {
		stream = append(stream, one...)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	d := NewDecoder(nil)
	for b.Loop() {
		d.Write(stream)
		for {
			_, ok, err := d.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
}

func BenchmarkGzipRoundTrip(b *testing.B) {
	src := bytes.Repeat([]byte(`{"amount":"10.00","currency":"CNY"},`), 30)
	var z, out []byte
	b.ReportAllocs()
	for b.Loop() {
		z = Compress(z[:0], src)
		var err error
		if out, err = Decompress(out[:0], z, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
