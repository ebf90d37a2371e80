package client

import (
	"strconv"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// FuzzParsePush feeds frames to the PUSH header parser: it must not panic, and what it
// accepts must obey mmtp.md (seq and epoch together, seq >= 1, a valid epoch).
func FuzzParsePush(f *testing.F) {
	f.Add(pushFrame(1, "E1", 1, "x"))
	f.Add(pushFrame(2, "", 0, "rev1"))
	f.Add(mmtp.AppendPush(nil, 3, "t", codec.Header{{Key: "seq", Value: "18446744073709551615"}, {Key: "epoch", Value: "a.b_c-D"}, {Key: "expires", Value: "1700000000000"}}, nil, false))
	f.Add(mmtp.AppendPush(nil, 4, "t", codec.Header{{Key: "seq", Value: "1"}}, nil, false))
	f.Add(mmtp.AppendPush(nil, 5, "t", codec.Header{{Key: "seq", Value: "+1"}, {Key: "epoch", Value: "e"}}, nil, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, _, err := mmtp.Parse(b, nil)
		if err != nil || fr.Type != mmtp.TypePush {
			return
		}
		p, err := parsePush(&fr)
		if err != nil {
			return
		}
		seq, hasSeq := p.Header.Get("seq")
		n, _ := strconv.ParseUint(seq, 10, 64) // leading zeros are still decimal
		if hasSeq != (p.Seq > 0) || (hasSeq && n != p.Seq) {
			t.Fatalf("seq header %q parsed as %d", seq, p.Seq)
		}
		if p.Seq > 0 && checkEpoch(p.Epoch) != nil {
			t.Fatalf("accepted epoch %q", p.Epoch)
		}
	})
}
