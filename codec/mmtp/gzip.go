package mmtp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrInflatedTooLarge is wrapped by Decompress when the output would exceed its limit.
var ErrInflatedTooLarge = errors.New("mmtp: decompressed body exceeds the limit")

// Compressor and decompressor state is large (hundreds of KiB for a writer), so it is
// recycled; the pools hold no request data between calls.
var (
	gzWriters sync.Pool // *gzip.Writer
	gzReaders sync.Pool // *gzip.Reader
)

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Compress appends the gzip encoding of src to dst, for a body sent with the GZIP flag.
// Safe for concurrent use.
func Compress(dst, src []byte) []byte {
	aw := &appendWriter{b: dst}
	zw, _ := gzWriters.Get().(*gzip.Writer)
	if zw == nil {
		zw = gzip.NewWriter(aw)
	} else {
		zw.Reset(aw)
	}
	// Writes to an appendWriter cannot fail.
	_, _ = zw.Write(src)
	_ = zw.Close()
	zw.Reset(io.Discard) // drop the reference to aw before pooling
	gzWriters.Put(zw)
	return aw.b
}

// Decompress appends the gunzipped src to dst. It fails with an error wrapping
// ErrInflatedTooLarge as soon as the output passes max bytes (a gzip bomb never gets
// buffered), and with the gzip error for a corrupt stream. Safe for concurrent use.
func Decompress(dst, src []byte, max int) ([]byte, error) {
	br := bytes.NewReader(src)
	zr, _ := gzReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(br)
	} else {
		err = zr.Reset(br)
	}
	if err != nil {
		return dst, fmt.Errorf("mmtp: gzip body: %w", err)
	}
	defer gzReaders.Put(zr)
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		room := cap(dst) - len(dst)
		if over := len(dst) - start + room - max; over > 0 {
			room -= over
		}
		if room <= 0 {
			return dst, atLimit(zr, max)
		}
		n, err := zr.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("mmtp: gzip body: %w", err)
		}
	}
}

// atLimit is called when the output has exactly max bytes: the stream must end now.
func atLimit(zr io.Reader, max int) error {
	var one [1]byte
	for {
		n, err := zr.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w (%d bytes)", ErrInflatedTooLarge, max)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mmtp: gzip body: %w", err)
		}
	}
}
