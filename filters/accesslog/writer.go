package accesslog

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Writer is the io.Writer to put under the access log's slog handler so that pool workers
// never block on log I/O (a slow disk, a full pipe to a log shipper): Write copies the
// line into a bounded queue and returns; one goroutine drains the queue into the
// underlying writer, batching lines. When the queue is full the line is dropped and
// counted: the access log degrades, requests do not.
//
// slog handlers call Write once per record with the whole line, which is what makes
// dropping whole lines possible.
type Writer struct {
	out     io.Writer
	queue   chan *[]byte
	bufs    sync.Pool
	dropped *metrics.Counter // mgw_accesslog_dropped_total
	closed  atomic.Bool
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error // first write error of the underlying writer, read after done
}

// maxLine bounds a line kept in the pool; longer lines are written but their buffers are
// not reused.
const maxLine = 4 << 10

// NewWriter starts the draining goroutine. queue is the number of lines that may wait
// (default 8192 when <= 0). Drops are counted in set as mgw_accesslog_dropped_total (set
// may be nil). Close stops it.
func NewWriter(out io.Writer, queue int, set *metrics.Set) *Writer {
	if queue <= 0 {
		queue = 8192
	}
	if set == nil {
		set = metrics.NewSet()
	}
	w := &Writer{out: out, queue: make(chan *[]byte, queue), quit: make(chan struct{}), done: make(chan struct{}),
		dropped: set.GetOrCreateCounter("mgw_accesslog_dropped_total")}
	w.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	go w.drain()
	return w
}

// Write queues a copy of p, or drops it when the queue is full or the writer closed. It
// never blocks and always reports success, so a logging handler does not retry.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed.Load() {
		w.dropped.Inc()
		return len(p), nil
	}
	b := w.bufs.Get().(*[]byte)
	*b = append((*b)[:0], p...)
	select {
	case w.queue <- b:
	default:
		w.dropped.Inc()
		w.put(b)
	}
	return len(p), nil
}

// Dropped returns the number of lines dropped so far.
func (w *Writer) Dropped() uint64 { return w.dropped.Get() }

// Close writes what is queued, stops the goroutine and returns the first error of the
// underlying writer. Later Writes are dropped. Safe to call more than once.
func (w *Writer) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.quit)
	})
	<-w.done
	return w.err
}

func (w *Writer) put(b *[]byte) {
	if cap(*b) <= maxLine {
		w.bufs.Put(b)
	}
}

// flushEvery is how often the draining goroutine wakes. It polls rather than waiting on
// the queue: a receiver parked on the channel would be woken by every line, and that
// wake-up (a futex, often on the other core) cost more than formatting the line.
const flushEvery = 10 * time.Millisecond

func (w *Writer) drain() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.out, 64<<10)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	flush := func() {
		for n := len(w.queue); n > 0; n-- {
			b := <-w.queue
			if _, err := bw.Write(*b); err != nil && w.err == nil {
				w.err = err
			}
			w.put(b)
		}
		if err := bw.Flush(); err != nil && w.err == nil {
			w.err = err
		}
	}
	for {
		select {
		case <-tick.C:
			flush()
		case <-w.quit:
			flush()
			return
		}
	}
}
