package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// blockingWriter blocks every Write until released, like a full pipe.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestWriterNeverBlocksAndDropsWhenFull(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	w := NewWriter(bw, 4, nil)
	log := slog.New(slog.NewTextHandler(w, nil))
	for i := 0; i < 100; i++ {
		log.Info("line", "i", i) // must return although the sink is stuck
	}
	// At most the queue plus one batch (taken from the queue, stuck in the sink) got in.
	if w.Dropped() < 100-2*4-1 {
		t.Fatalf("dropped %d, want at least 91", w.Dropped())
	}
	close(bw.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Count(bw.buf.String(), "\n")
	if uint64(got)+w.Dropped() != 100 {
		t.Fatalf("%d written + %d dropped != 100", got, w.Dropped())
	}
	w.Write([]byte("late\n"))
	if strings.Contains(bw.buf.String(), "late") {
		t.Fatal("written after Close")
	}
}

func TestWriterKeepsLinesWhole(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 1024, nil)
	log := slog.New(slog.NewJSONHandler(w, nil))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				log.Info("access", "g", g, "i", i, "pad", strings.Repeat("x", i))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if uint64(len(lines))+w.Dropped() != 800 {
		t.Fatalf("%d lines + %d dropped", len(lines), w.Dropped())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Fatalf("torn line %q", l)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterReportsSinkError(t *testing.T) {
	w := NewWriter(failingWriter{}, 8, nil)
	fmt.Fprintln(w, "x")
	if err := w.Close(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close lost the error")
	}
}
