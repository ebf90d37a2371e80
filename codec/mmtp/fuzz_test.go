package mmtp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// Seeds beyond testdata/fuzz: every golden vector, and the same frames glued together.
func addVectorSeeds(f *testing.F) {
	vs := loadVectors(f)
	var all []byte
	for _, v := range vs {
		f.Add(v.data)
		all = append(all, v.data...)
	}
	f.Add(all)
}

// FuzzParse checks Parse's contract on arbitrary bytes: errors are *ProtocolError naming
// an offset inside the input (a field cut by the block end is named at its start, which
// may be the input's end); a frame re-encodes to exactly the bytes it came from; every proper
// prefix of a frame is "incomplete"; and the streaming Decoder fed one byte at a time sees
// the same frames and the same error as repeated Parse calls.
func FuzzParse(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var frames [][]byte
		var perr error
		for rest := data; ; {
			fr, n, err := Parse(rest, nil)
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(rest) || pe.Field == "" || pe.Reason == "" {
					t.Fatalf("bad error %#v for %x", err, rest)
				}
				perr = err
				break
			}
			if n == 0 {
				break
			}
			checkFrame(t, &fr, rest[:n])
			frames = append(frames, rest[:n])
			rest = rest[n:]
		}
		d := NewDecoder(nil)
		var got int
		var derr error
	feed:
		for i := range data {
			d.Write(data[i : i+1])
			for {
				fr, ok, err := d.Next()
				if err != nil {
					derr = err
					break feed
				}
				if !ok {
					break
				}
				if got >= len(frames) || fr.Len() != len(frames[got]) {
					t.Fatalf("decoder frame %d differs", got)
				}
				got++
			}
		}
		if got != len(frames) || (derr == nil) != (perr == nil) || (derr != nil && derr.Error() != perr.Error()) {
			t.Fatalf("decoder: %d frames, err %v; Parse: %d frames, err %v", got, derr, len(frames), perr)
		}
	})
}

func checkFrame(t *testing.T, fr *Frame, raw []byte) {
	if fr.Len() != len(raw) {
		t.Fatalf("Len %d, consumed %d", fr.Len(), len(raw))
	}
	if _, n, err := Parse(raw[:len(raw)-1], nil); n != 0 || err != nil {
		t.Fatalf("prefix of a valid frame: n %d err %v", n, err)
	}
	var h codec.Header
	entries := 0
	fr.Each(func(k, v []byte) bool {
		if !ValidKey(string(k)) {
			t.Fatalf("invalid key %q passed", k)
		}
		if got, ok := fr.Get(string(k)); !ok || !bytes.Equal(got, v) {
			t.Fatalf("Get(%q) = %q, %v; Each gave %q", k, got, ok, v)
		}
		h = append(h, codec.Field{Key: string(k), Value: string(v)})
		entries++
		return true
	})
	if entries != fr.Entries {
		t.Fatalf("Each saw %d entries, Entries %d", entries, fr.Entries)
	}
	if enc := AppendFrame(nil, fr.Type, fr.Flags, fr.StreamID, h, fr.Body); !bytes.Equal(enc, raw) {
		t.Fatalf("re-encode differs:\n%x\n%x", enc, raw)
	}
	r := ToRequest(fr, codec.ConnInfo{})
	if len(r.Header) != entries || r.StreamID != fr.StreamID || !bytes.Equal(r.Body, fr.Body) {
		t.Fatalf("ToRequest %+v", r)
	}
	_ = CheckClientFrame(fr)
	_ = CheckServerFrame(fr)
}

// FuzzRoundTrip encodes arbitrary content and parses it back: the encoder must always
// produce a valid frame, and the entries that survive are exactly those its policy keeps.
func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(TypeRequest), byte(0), uint32(7), "operation-type", "demo.echo", "device-id", "d1", []byte("hi"))
	f.Add(byte(TypeResponse), byte(1), uint32(1), "Status", "200", "status", "x", []byte{0x1f, 0x8b})
	f.Add(byte(TypePing), byte(0), uint32(5), "", "", "a b", "c", []byte("123456789"))
	f.Fuzz(func(t *testing.T, typ, flags byte, stream uint32, k1, v1, k2, v2 string, body []byte) {
		ty := Type(typ%8 + 1)
		if ty.wantsZeroStream() {
			stream = 0
		} else if stream == 0 {
			stream = 1
		}
		h := codec.Header{{Key: k1, Value: v1}, {Key: k2, Value: v2}}
		b := AppendFrame(nil, ty, flags, stream, h, body)
		lim := &Limits{MaxHeaderBytes: MaxHeaderBlock, MaxBodyBytes: len(body) + 1}
		fr, n, err := Parse(b, lim)
		if err != nil || n != len(b) {
			t.Fatalf("encoder output rejected: n %d/%d err %v", n, len(b), err)
		}
		var want []string
		for _, e := range h {
			k := strings.ToLower(e.Key)
			if ValidKey(k) && len(e.Value) <= MaxValueLen && !(len(want) > 0 && strings.HasPrefix(want[0], k+"=")) &&
				!strings.ContainsFunc(e.Key, func(r rune) bool { return r > 0x7f }) {
				want = append(want, k+"="+e.Value)
			}
		}
		var got []string
		fr.Each(func(k, v []byte) bool {
			got = append(got, string(k)+"="+string(v))
			return true
		})
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("entries %q, want %q", got, want)
		}
		wantBody := body
		if ty == TypePing && len(body) > MaxPingBody {
			wantBody = body[:MaxPingBody]
		}
		if fr.Type != ty || fr.StreamID != stream || fr.Flags != flags&FlagGzip || !bytes.Equal(fr.Body, wantBody) {
			t.Fatalf("frame %+v", fr)
		}
	})
}
