package pipe

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// pauseCounter counts pauses as netpoll's connections do: a ResumeRead with no pause to
// undo is ignored, so a resume that overtakes its pause leaves the connection paused.
type pauseCounter struct {
	mu     sync.Mutex
	n      int32
	pauses atomic.Int32 // n, readable without mu
}

func (p *pauseCounter) PauseRead() {
	p.mu.Lock()
	p.n++
	p.pauses.Store(p.n)
	p.mu.Unlock()
}

func (p *pauseCounter) ResumeRead() {
	p.mu.Lock()
	if p.n > 0 {
		p.n--
	}
	p.pauses.Store(p.n)
	p.mu.Unlock()
}

// TestPipeCarriesBody: a writer that never blocks and a slow reader; every byte
// arrives in order, reads are paused while more than high bytes wait, and every pause is
// matched by a resume.
func TestPipeCarriesBody(t *testing.T) {
	var pc pauseCounter
	b := New(&pc, 64<<10)
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(rand.IntN(256))
	}
	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 3000)
		for {
			n, err := b.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Errorf("Read: %v", err)
				return
			}
		}
	}()
	maxPaused := int32(0)
	for off := 0; off < len(want); {
		n := min(len(want)-off, 1+rand.IntN(20000))
		if _, err := b.Write(want[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
		maxPaused = max(maxPaused, pc.pauses.Load())
	}
	b.Finish(nil)
	wg.Wait()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, not the %d written in order", got.Len(), len(want))
	}
	if maxPaused > 1 || pc.pauses.Load() != 0 {
		t.Fatalf("pauses: at most %d held, %d left; want at most 1, 0 left", maxPaused, pc.pauses.Load())
	}
}

// TestPipePausesPastHigh: with no reader, the writer pauses reads once, past high.
func TestPipePausesPastHigh(t *testing.T) {
	var pc pauseCounter
	b := New(&pc, 1000)
	b.Write(make([]byte, 1000))
	if pc.pauses.Load() != 0 {
		t.Fatal("paused at high, want past it")
	}
	b.Write(make([]byte, 10))
	b.Write(make([]byte, 10))
	if pc.pauses.Load() != 1 {
		t.Fatalf("pauses = %d, want 1", pc.pauses.Load())
	}
	// The reader takes it down to low (250): reads resume.
	p := make([]byte, 800)
	b.Read(p)
	if pc.pauses.Load() != 0 {
		t.Fatalf("pauses = %d after reading down to low, want 0", pc.pauses.Load())
	}
}

// TestPipeFinishLetsGoOfReads: a body that ends while the reader lags gives back the
// pause it held (a backend connection goes back to its pool then), and the reader still
// gets every byte, then EOF.
func TestPipeFinishLetsGoOfReads(t *testing.T) {
	var pc pauseCounter
	b := New(&pc, 10)
	b.Write(make([]byte, 20))
	if pc.pauses.Load() != 1 {
		t.Fatalf("pauses = %d past high, want 1", pc.pauses.Load())
	}
	b.Finish(nil)
	if pc.pauses.Load() != 0 {
		t.Fatalf("pauses = %d after Finish, want 0", pc.pauses.Load())
	}
	got, err := io.ReadAll(b)
	if len(got) != 20 || err != nil || pc.pauses.Load() != 0 {
		t.Fatalf("read %d bytes, %v, pauses %d; want 20, nil, 0", len(got), err, pc.pauses.Load())
	}
}

// TestPipeLetGoKeepsTheBodyOpen: LetGo gives back the pause without ending the body (the
// connection goes back to its pool before the reader learns of the end), and Finish after
// it neither resumes twice nor loses bytes.
func TestPipeLetGoKeepsTheBodyOpen(t *testing.T) {
	var pc pauseCounter
	pc.PauseRead() // someone else's pause on the same connection: must survive
	b := New(&pc, 10)
	b.Write(make([]byte, 20))
	if pc.pauses.Load() != 2 {
		t.Fatalf("pauses = %d past high, want 2", pc.pauses.Load())
	}
	b.LetGo()
	if pc.pauses.Load() != 1 {
		t.Fatalf("pauses = %d after LetGo, want 1 (the other holder's)", pc.pauses.Load())
	}
	done := make(chan error, 1)
	go func() {
		got, err := io.ReadAll(b)
		if len(got) != 20 {
			err = errors.New("short body")
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the reader ended (%v) before Finish", err)
	default:
	}
	b.Finish(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pc.pauses.Load() != 1 {
		t.Fatalf("pauses = %d after Finish, want 1", pc.pauses.Load())
	}
}

// TestPipeAbandon: the reader gives up while reads are paused; reads resume, the
// writer's next Write fails with the reader's error, and a waiting reader is woken.
func TestPipeAbandon(t *testing.T) {
	var pc pauseCounter
	b := New(&pc, 10)
	b.Write(make([]byte, 100))
	if pc.pauses.Load() != 1 {
		t.Fatalf("pauses = %d, want 1", pc.pauses.Load())
	}
	errGone := errors.New("answered")
	b.Abandon(errGone)
	if pc.pauses.Load() != 0 {
		t.Fatalf("pauses = %d after Abandon, want 0", pc.pauses.Load())
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, errGone) {
		t.Fatalf("Write after Abandon = %v", err)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, errGone) {
		t.Fatalf("Read after Abandon = %v", err)
	}

	// A reader blocked on an empty stream is released by Finish with an error.
	b2 := New(&pc, 10)
	done := make(chan error, 1)
	go func() { _, err := b2.Read(make([]byte, 1)); done <- err }()
	b2.Finish(io.ErrUnexpectedEOF)
	if err := <-done; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Read after Finish(err) = %v", err)
	}
}

// TestPipePauseResumeOrder: a fast reader racing a writer that crosses the high mark
// over and over must never leave the connection paused once the body is read (a resume
// that reached the connection before its pause stalled uploads for good).
func TestPipePauseResumeOrder(t *testing.T) {
	for round := 0; round < 300; round++ {
		var pc pauseCounter
		b := New(&pc, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 256)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		chunk := make([]byte, 100)
		for i := 0; i < 50; i++ {
			b.Write(chunk)
		}
		b.Finish(nil)
		<-done
		if n := pc.pauses.Load(); n != 0 {
			t.Fatalf("round %d: %d pauses left after the body was read", round, n)
		}
	}
}
