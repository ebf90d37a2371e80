package mmtp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/mgw-project/mgw/codec"
)

// stream is several frames of different types back to back, one with a large body.
func stream() []byte {
	var b []byte
	b = AppendRequest(b, 1, "demo.echo", hdr("device-id", "d"), []byte("hi"), false)
	b = AppendPing(b, []byte("12345678"))
	b = AppendRequest(b, 3, "big", nil, bytes.Repeat([]byte("z"), 20000), false)
	b = AppendResponse(b, 1, &codec.Response{Status: 204})
	b = AppendGoAway(b, 3, ReasonShutdown)
	return b
}

func summary(f Frame) string {
	return f.Type.String() + "/" + string(rune('0'+f.StreamID)) + "/" + string(rune('0'+len(f.Body)%10))
}

func TestDecoderOneByteAndAllAtOnce(t *testing.T) {
	b := stream()
	var want []string
	for rest := b; len(rest) > 0; {
		f, n, err := Parse(rest, nil)
		if err != nil || n == 0 {
			t.Fatal(err)
		}
		want = append(want, summary(f))
		rest = rest[n:]
	}
	for name, r := range map[string]io.Reader{
		"one-byte": iotest.OneByteReader(bytes.NewReader(b)),
		"half":     iotest.HalfReader(bytes.NewReader(b)),
		"all":      bytes.NewReader(b),
	} {
		d := NewDecoder(nil)
		var got []string
		for {
			f, err := d.ReadFrame(r)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, summary(f))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %v want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: frame %d %s want %s", name, i, got[i], want[i])
			}
		}
	}
	// Push mode, byte by byte.
	d := NewDecoder(nil)
	var got int
	for i := range b {
		d.Write(b[i : i+1])
		for {
			_, ok, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got++
		}
	}
	if got != len(want) || d.Buffered() != 0 {
		t.Fatalf("push mode: %d frames, %d buffered", got, d.Buffered())
	}
}

func TestDecoderDropsBufferWhenEmpty(t *testing.T) {
	d := NewDecoder(nil)
	d.Write(stream())
	for {
		_, ok, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
	}
	if d.buf != nil {
		t.Fatalf("decoder keeps %d bytes of buffer while empty", cap(d.buf))
	}
	// ReadFrame keeps no more than one read chunk after a large frame.
	d = NewDecoder(nil)
	r := bytes.NewReader(stream())
	for {
		if _, err := d.ReadFrame(r); err != nil {
			break
		}
	}
	if cap(d.buf) > readChunk {
		t.Fatalf("ReadFrame keeps %d bytes", cap(d.buf))
	}
}

func TestDecoderErrors(t *testing.T) {
	b := stream()
	d := NewDecoder(nil)
	if _, err := d.ReadFrame(bytes.NewReader(b[:20])); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut frame: %v", err)
	}
	d = NewDecoder(nil)
	d.Write([]byte("MM\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00")) // stream 0 REQUEST, seen at byte 8...
	d.Write([]byte{0, 0, 0, 0})
	_, _, err1 := d.Next()
	_, _, err2 := d.Next()
	var pe *ProtocolError
	if !errors.As(err1, &pe) || pe.Offset != 8 || err2 != err1 {
		t.Fatalf("sticky error: %v / %v", err1, err2)
	}
	boom := errors.New("boom")
	d = NewDecoder(nil)
	if _, err := d.ReadFrame(iotest.ErrReader(boom)); err != boom {
		t.Fatalf("read error: %v", err)
	}
	// A too-large body fails from the fixed header alone, without reading the body.
	d = NewDecoder(&Limits{MaxBodyBytes: 10})
	big := AppendRequest(nil, 1, "x", nil, make([]byte, 11), false)
	if _, err := d.ReadFrame(bytes.NewReader(big[:HeaderSize])); GoAwayReason(err) != ReasonFrameTooLarge {
		t.Fatalf("too large: %v", err)
	}
}

func TestBadHeaderBlockFailsBeforeBody(t *testing.T) {
	b := AppendFrame(nil, TypeRequest, 0, 1, nil, make([]byte, 1000))
	b = append(b[:HeaderSize:HeaderSize], 1, 'A', 0, 0) // invalid key, body not yet here
	b[7] = 4
	_, n, err := Parse(b, nil)
	var pe *ProtocolError
	if !errors.As(err, &pe) || n != 0 || pe.Offset != 17 {
		t.Fatalf("n %d err %v", n, err)
	}
}
