package mmtp

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
)

// TestDocsExamples keeps the byte dumps in docs/mmtp.md honest: each indented hex block of
// its Example section must be exactly what the encoder produces.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/mmtp.md")
	if err != nil {
		t.Fatalf("docs/mmtp.md is part of the repository: %v", err)
	}
	s := string(doc)
	i := strings.Index(s, "\n## Example")
	if i < 0 {
		t.Fatal("docs/mmtp.md has no Example section")
	}
	s = s[i:]
	if j := strings.Index(s[1:], "\n## "); j >= 0 {
		s = s[:j+1]
	}
	hexLine := regexp.MustCompile(`^    ((?:[0-9a-f]{2}(?: {1,2}|$))+)`)
	var frames [][]byte
	var cur []byte
	for _, line := range strings.Split(s, "\n") {
		m := hexLine.FindStringSubmatch(line)
		if m == nil {
			if cur != nil {
				frames = append(frames, cur)
				cur = nil
			}
			continue
		}
		b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		cur = append(cur, b...)
	}
	want := [][]byte{
		AppendRequest(nil, 7, "demo.echo", nil, []byte("hi"), false),
		AppendResponse(nil, 7, &codec.Response{Status: 200, Body: []byte("hi")}),
	}
	if len(frames) != len(want) {
		t.Fatalf("found %d example frames, want %d", len(frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(frames[i], want[i]) {
			t.Errorf("example %d:\n doc %x\n enc %x", i, frames[i], want[i])
		}
	}
}
