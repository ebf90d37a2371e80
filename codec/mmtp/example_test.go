package mmtp_test

import (
	"fmt"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// A read worker parses whatever bytes it holds; n == 0 means "keep them, read more".
func ExampleParse() {
	buf := mmtp.AppendRequest(nil, 7, "demo.echo", nil, []byte("hi"), false)
	lim := mmtp.DefaultLimits()
	for off := 0; off < len(buf); {
		f, n, err := mmtp.Parse(buf[off:], &lim)
		if err == nil && n > 0 {
			err = mmtp.CheckClientFrame(&f)
		}
		if err != nil {
			fmt.Println("GOAWAY", mmtp.GoAwayReason(err), err)
			return
		}
		if n == 0 {
			break // incomplete: keep buf[off:] until more bytes arrive
		}
		off += n
		op, _ := f.Get("operation-type")
		fmt.Printf("%s stream %d op %s body %q\n", f.Type, f.StreamID, op, f.Body)
		req := mmtp.ToRequest(&f, codec.ConnInfo{}) // owns its memory from here on
		resp := &codec.Response{Status: 200, Body: req.Body}
		fmt.Printf("answer: % x\n", mmtp.AppendResponse(nil, req.StreamID, resp))
	}
	// Output:
	// REQUEST stream 7 op demo.echo body "hi"
	// answer: 4d 4d 01 03 00 00 00 0c 00 00 00 07 00 00 00 02 06 73 74 61 74 75 73 00 03 32 30 30 68 69
}

func ExampleProtocolError() {
	_, _, err := mmtp.Parse([]byte("GET / HTTP/1.1\r\n"), nil)
	fmt.Println(err)
	fmt.Println(mmtp.GoAwayReason(err))
	// Output:
	// mmtp: protocol_error at byte 0 (magic): want magic 0x4d4d ("MM"), byte is 0x47
	// protocol_error
}
