package http1_test

import (
	"fmt"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/http1"
)

// conn is the per-connection state a gateway handler keeps: one head and one body
// decoder, reused for every request, and the body gathered so far.
type conn struct {
	head   http1.RequestHead
	body   http1.BodyDecoder
	inBody bool
	buf    []byte
}

// onData is the shape of netpoll's Handler.OnData: consume what can be used, leave the
// rest for the next call.
func (c *conn) onData(data []byte, lim *http1.Limits) (consumed int, out []byte, err error) {
	for {
		if !c.inBody {
			n, err := http1.ParseHead(data[consumed:], lim, &c.head)
			if err != nil || n == 0 {
				return consumed, out, err
			}
			consumed += n
			c.body.Reset(&c.head, lim)
			c.inBody, c.buf = true, nil
			if c.head.ExpectContinue {
				out = http1.Append100Continue(out)
			}
		}
		piece, n, done, err := c.body.Decode(data[consumed:])
		if err != nil {
			return consumed, out, err
		}
		consumed += n
		c.buf = append(c.buf, piece...) // a copy: data is the reactor's buffer
		if !done {
			if piece == nil {
				return consumed, out, nil // need more bytes
			}
			continue
		}
		c.inBody = false
		req := http1.ToRequest(&c.head, c.buf, codec.ConnInfo{Listener: "web"})
		// Without a Date field AppendResponse adds one with the current time; a fixed
		// one keeps this example's output stable.
		resp := &codec.Response{Status: 200, Body: []byte(req.Operation),
			Header: codec.Header{{Key: "date", Value: "Mon, 07 Dec 2026 00:00:00 GMT"}}}
		out = http1.AppendResponse(out, req.Minor, resp, c.head.KeepAlive)
	}
}

func Example() {
	var c conn
	// Two pipelined requests, the second cut short by the read.
	in := []byte("POST /api/user.get HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}" +
		"POST /api/user.set HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
	n, out, err := c.onData(in, nil)
	fmt.Printf("consumed %d of %d, err %v\n%q\n", n, len(in), err, out)

	// The rest of the second request arrives.
	n, out, err = c.onData([]byte("0\r\n\r\n"), nil)
	fmt.Printf("consumed %d, err %v\n%q\n", n, err, out)

	// A smuggling attempt: both framings.
	_, _, err = c.onData([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), nil)
	e := http1.AsError(err)
	fmt.Println(e.Status, e.Reason)
	// Output:
	// consumed 136 of 136, err <nil>
	// "HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\nContent-Length: 8\r\n\r\nuser.get"
	// consumed 5, err <nil>
	// "HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\nContent-Length: 8\r\n\r\nuser.set"
	// 400 both Content-Length and Transfer-Encoding present
}
