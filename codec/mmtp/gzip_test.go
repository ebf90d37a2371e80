package mmtp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestGzipRoundTrip(t *testing.T) {
	src := []byte(strings.Repeat("mobile gateway ", 1000))
	z := Compress([]byte("pre"), src)
	if !bytes.HasPrefix(z, []byte("pre")) || len(z) >= len(src) {
		t.Fatalf("compressed %d bytes", len(z))
	}
	out, err := Decompress([]byte("x"), z[3:], len(src))
	if err != nil || !bytes.Equal(out[1:], src) || out[0] != 'x' {
		t.Fatalf("err %v, %d bytes", err, len(out))
	}
	// Exactly one byte under what it inflates to: refused.
	if _, err := Decompress(nil, z[3:], len(src)-1); !errors.Is(err, ErrInflatedTooLarge) {
		t.Fatalf("limit: %v", err)
	}
	empty, err := Decompress(nil, Compress(nil, nil), 0)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty: %v %d", err, len(empty))
	}
}

func TestGzipBombStopsAtLimit(t *testing.T) {
	bomb := Compress(nil, make([]byte, 16<<20)) // 16 MiB of zeros, ~16 KiB compressed
	out, err := Decompress(nil, bomb, 1<<20)
	if !errors.Is(err, ErrInflatedTooLarge) || cap(out) > 2<<20 {
		t.Fatalf("err %v, buffered %d", err, cap(out))
	}
}

func TestGzipCorrupt(t *testing.T) {
	if _, err := Decompress(nil, []byte("not gzip"), 100); err == nil || errors.Is(err, ErrInflatedTooLarge) {
		t.Fatalf("err %v", err)
	}
	z := Compress(nil, []byte("hello world"))
	if _, err := Decompress(nil, z[:len(z)-6], 100); err == nil {
		t.Fatal("truncated stream accepted")
	}
}
