package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// benchRequest is a typical ~300-byte mobile API call.
var benchRequest = []byte("POST /api/alipay.trade.pay HTTP/1.1\r\n" +
	"Host: api.example.com\r\n" +
	"User-Agent: WalletApp/10.2.3 (iPhone; iOS 17.4)\r\n" +
	"Accept: application/json\r\n" +
	"Content-Type: application/json\r\n" +
	"App-Id: wallet\r\n" +
	"Device-Id: 9f1c2e7a-41d3-4b8e-a2f0-3c5d6e7f8a9b\r\n" +
	"Accept-Encoding: gzip\r\n" +
	"Content-Length: 27\r\n" +
	"\r\n" +
	`{"amount":100,"to":"12345"}`)

func BenchmarkParseHead(b *testing.B) {
	var h RequestHead
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := ParseHead(benchRequest, nil, &h)
		if err != nil || n == 0 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkParseRequest is the whole per-request path of the gateway's HTTP handler:
// head, body, and the protocol-neutral request.
func BenchmarkParseRequest(b *testing.B) {
	var (
		h RequestHead
		d BodyDecoder
	)
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := ParseHead(benchRequest, nil, &h)
		if err != nil || n == 0 {
			b.Fatal(n, err)
		}
		d.Reset(&h, nil)
		data, _, done, err := d.Decode(benchRequest[n:])
		if err != nil || !done {
			b.Fatal(err)
		}
		body := make([]byte, len(data))
		copy(body, data)
		if r := ToRequest(&h, body, codec.ConnInfo{}); r.Operation != "alipay.trade.pay" {
			b.Fatal(r.Operation)
		}
	}
}

func BenchmarkParseChunked(b *testing.B) {
	in := []byte("POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
	var (
		h RequestHead
		d BodyDecoder
	)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := ParseHead(in, nil, &h)
		if err != nil || n == 0 {
			b.Fatal(err)
		}
		d.Reset(&h, nil)
		for rest := in[n:]; ; {
			data, c, done, err := d.Decode(rest)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[c:]
			if done {
				break
			}
			if data == nil {
				b.Fatal("incomplete")
			}
		}
	}
}

var benchResponse = &codec.Response{
	Status: 200,
	Header: codec.Header{
		{Key: "content-type", Value: "application/json"},
		{Key: "x-request-id", Value: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{Key: "cache-control", Value: "no-store"},
		{Key: "date", Value: "Fri, 27 Nov 2026 05:00:00 GMT"},
	},
	Body: []byte(`{"code":"10000","msg":"Success","trade_no":"2026112722001"}`),
}

func BenchmarkAppendResponse(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], 1, benchResponse, true)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendResponseHeadChunked(b *testing.B) {
	buf := make([]byte, 0, 1024)
	chunk := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponseHead(buf[:0], 1, 200, benchResponse.Header, -1, true)
		buf = AppendChunk(buf, chunk)
		buf = AppendLastChunk(buf)
	}
}

// BenchmarkStdReadRequest is net/http's parser on the same request, as a yardstick that
// shares whatever load the machine is under (absolute numbers on a busy box mislead).
func BenchmarkStdReadRequest(b *testing.B) {
	rd := bytes.NewReader(benchRequest)
	br := bufio.NewReader(rd)
	b.SetBytes(int64(len(benchRequest)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(benchRequest)
		br.Reset(rd)
		req, err := http.ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			b.Fatal(err)
		}
	}
}
