package mmtp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

type vector struct {
	name, want, check string
	data              []byte
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	fh, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var vs []vector
	sc := bufio.NewScanner(fh)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		switch {
		case strings.HasPrefix(s, "=== "):
			vs = append(vs, vector{name: strings.TrimPrefix(s, "=== ")})
		case len(vs) == 0 || strings.HasPrefix(s, "#"):
		case strings.HasPrefix(s, "want: "):
			vs[len(vs)-1].want = strings.TrimPrefix(s, "want: ")
		case strings.HasPrefix(s, "check: "):
			vs[len(vs)-1].check = strings.TrimPrefix(s, "check: ")
		default:
			if i := strings.IndexByte(s, '#'); i >= 0 {
				s = s[:i]
			}
			b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				t.Fatalf("vectors.txt:%d: %v", line, err)
			}
			vs[len(vs)-1].data = append(vs[len(vs)-1].data, b...)
		}
	}
	if len(vs) < 30 {
		t.Fatalf("only %d vectors loaded", len(vs))
	}
	return vs
}

// parseChecked is what a receiver does: Parse, then the direction rules of its side.
func parseChecked(b []byte, check string) (Frame, int, error) {
	f, n, err := Parse(b, nil)
	if err != nil || n == 0 {
		return f, n, err
	}
	switch check {
	case "client":
		err = CheckClientFrame(&f)
	case "server":
		err = CheckServerFrame(&f)
	}
	return f, n, err
}

func TestGoldenVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			f, n, err := parseChecked(v.data, v.check)
			if strings.HasPrefix(v.want, "ok ") {
				if err != nil || n != len(v.data) {
					t.Fatalf("n %d/%d err %v", n, len(v.data), err)
				}
				got := fmt.Sprintf("ok %s stream=%d flags=%d entries=%d body=%d", f.Type, f.StreamID, f.Flags, f.Entries, len(f.Body))
				if got != v.want {
					t.Fatalf("got  %s\nwant %s", got, v.want)
				}
				// Byte-exact re-encoding from the parsed fields.
				var h codec.Header
				f.Each(func(k, val []byte) bool {
					h = append(h, codec.Field{Key: string(k), Value: string(val)})
					return true
				})
				if enc := AppendFrame(nil, f.Type, f.Flags, f.StreamID, h, f.Body); !bytes.Equal(enc, v.data) {
					t.Fatalf("re-encoded\n%x\nwant\n%x", enc, v.data)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("want %s, got n %d err %v", v.want, n, err)
			}
			got := fmt.Sprintf("error offset=%d field=%s", pe.Offset, pe.Field)
			if pe.TooLarge {
				got += " too_large"
			}
			if got != v.want {
				t.Fatalf("got  %s (%v)\nwant %s", got, err, v.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("byte %d (%s)", pe.Offset, pe.Field)) {
				t.Fatalf("message does not name the offset and field: %v", err)
			}
		})
	}
}

// TestGoldenEncoders builds the valid vectors with the typed encoders, byte for byte.
func TestGoldenEncoders(t *testing.T) {
	vs := map[string][]byte{}
	for _, v := range loadVectors(t) {
		vs[v.name] = v.data
	}
	ping := []byte{0, 1, 2, 3, 4, 5, 6, 7}
	cases := map[string][]byte{
		"request-demo-echo": AppendRequest(nil, 7, "demo.echo", nil, []byte("hi"), false),
		"response-200": AppendResponse(nil, 7, &codec.Response{Status: 200,
			Header: hdr("Content-Type", "text/plain"), Body: []byte("hi")}),
		"response-404": AppendResponse(nil, 8, codec.ErrorResponse(404, codec.ErrNoRoute, "no route for demo.x")),
		"push":         AppendPush(nil, 2, "orders", nil, []byte("{}"), false),
		"push-ack":     AppendPushAck(nil, 2),
		"ping":         AppendPing(nil, ping),
		"pong":         AppendPong(nil, ping),
		"ping-empty":   AppendPing(nil, nil),
		"goaway":       AppendGoAway(nil, 7, ReasonProtocolError),
	}
	for name, got := range cases {
		if !bytes.Equal(got, vs[name]) {
			t.Errorf("%s:\n got %x\nwant %x", name, got, vs[name])
		}
	}
}
