package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mgw-project/mgw/codec/mmtp/client"
)

// errWatchDone declines the pushes that arrive after -count was reached, so that they
// stay unacknowledged for whoever connects next instead of being acked unseen.
var errWatchDone = errors.New("mgw watch: -count reached")

// runWatch is `mgw watch`: it says HELLO as a device, prints each push as it arrives,
// acknowledges it, and on GOAWAY or a broken connection reconnects and resumes from the
// last push it printed (mmtp.md, "Push delivery"). It runs until interrupted or -count
// pushes were printed, then says on stderr how to resume. Exit 0 then, 1 when the HELLO
// is refused, 2 for bad flags.
func runWatch(args []string, stdout, stderr io.Writer) int {
	// Frames are traced on the reader goroutine, reconnects on Redial's: one writer for both.
	stderr = &lockedWriter{w: stderr}
	fs := flag.NewFlagSet("mgw watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: mgw watch -device DEVICE [-app APP -secret-env VAR] [flags]

Prints one line per push: seq, epoch, topic, message-id, body (quoted when it is not
one line of printable text); "-" for what the push lacks. With -json, one JSON object
per push: seq, epoch, topic, message_id, expires (Unix ms), and body, or body_base64
when the body is not UTF-8.

Flags:`)
		fs.PrintDefaults()
	}
	cf := addConnFlags(fs, "")
	asJSON := fs.Bool("json", false, "print JSON lines")
	count := fs.Int("count", 0, "exit after printing this many pushes (0: until interrupted)")
	resume := fs.String("resume", "", "EPOCH:SEQ: resume after this push (what a previous run printed on exit)")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed for each dial and HELLO")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 || *cf.device == "" || *count < 0 {
		fmt.Fprintln(stderr, "mgw watch: -device is required, -count is not negative, and there are no arguments")
		fs.Usage()
		return 2
	}
	opts, err := cf.options(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mgw watch: %v\n", err)
		return 2
	}
	cursor, err := parseResume(*resume)
	if err != nil {
		fmt.Fprintf(stderr, "mgw watch: -resume: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	w := &watcher{out: stdout, json: *asJSON, limit: *count, done: cancel}
	opts.Hello, opts.Timeout, opts.Push = true, *timeout, cursor
	opts.OnPushMessage = w.print
	opts.OnPushReset = func(epoch string) {
		fmt.Fprintf(stderr, "mgw watch: push history was lost (new epoch %s): re-sync from the backend\n", epoch)
	}
	var connected func(*client.Client)
	if *cf.verbose {
		connected = func(c *client.Client) {
			l := c.PushLog()
			fmt.Fprintf(stderr, "mgw watch: connected to %s: push-epoch %q push-seq %d reset %v\n", c.RemoteAddr(), l.Epoch, l.Seq, l.Reset)
		}
	}
	// Always said: a watch that silently retries a wrong address looks like a quiet device.
	lost := func(err error, wait time.Duration) {
		var ge *client.GoAwayError
		if errors.As(err, &ge) { // its own text speaks of calls, which a watch has none of
			err = fmt.Errorf("gateway sent GOAWAY (reason %q)", ge.Reason)
		}
		fmt.Fprintf(stderr, "mgw watch: %v; reconnecting in %s\n", err, wait)
	}
	err = client.Redial(ctx, *cf.addr, opts, connected, lost)
	epoch, seq := cursor.Position()
	fmt.Fprintf(stderr, "mgw watch: %d pushes printed; resume with -resume %s:%d\n", w.printed(), epoch, seq)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "mgw watch: %v\n", err)
		return 1
	}
	return 0
}

// parseResume reads -resume EPOCH:SEQ; empty starts with no history.
func parseResume(s string) (*client.PushCursor, error) {
	if s == "" || s == ":0" {
		return client.NewPushCursor("", 0), nil
	}
	epoch, seqS, ok := strings.Cut(s, ":")
	if !ok || epoch == "" {
		return nil, fmt.Errorf("%q is not EPOCH:SEQ", s)
	}
	seq, err := strconv.ParseUint(seqS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q: SEQ %q is not a decimal number", s, seqS)
	}
	return client.NewPushCursor(epoch, seq), nil
}

// watcher prints pushes; it runs on the client's reader goroutine, one push at a time.
type watcher struct {
	out   io.Writer
	json  bool
	limit int
	done  func()

	mu sync.Mutex // n is read by the main goroutine at the end
	n  int
}

func (w *watcher) printed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *watcher) print(p *client.Push) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limit > 0 && w.n >= w.limit {
		return errWatchDone
	}
	var line []byte
	if w.json {
		line = pushJSON(p)
	} else {
		line = []byte(pushText(p))
	}
	line = append(line, '\n')
	if _, err := w.out.Write(line); err != nil {
		// Unprinted, so unacknowledged: the gateway keeps it.
		w.done()
		return err
	}
	w.n++
	if w.limit > 0 && w.n == w.limit {
		w.done() // this push is still acknowledged: Close waits for its ack
	}
	return nil
}

func pushText(p *client.Push) string {
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	seq := "-"
	if p.Seq > 0 {
		seq = strconv.FormatUint(p.Seq, 10)
	}
	body := string(p.Body)
	if !oneLine(body) {
		body = strconv.Quote(body)
	}
	return seq + " " + dash(p.Epoch) + " " + dash(p.Topic) + " " + dash(p.MessageID) + " " + body
}

// oneLine reports whether s prints as itself on one line, so that a line-reading script
// can take everything after the fourth space as the body.
func oneLine(s string) bool {
	if s == "" || !utf8.ValidString(s) || s[0] == '"' {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// watchLine is one -json line; body or body_base64 as POST /v1/push takes them.
type watchLine struct {
	Seq        uint64 `json:"seq,omitempty"`
	Epoch      string `json:"epoch,omitempty"`
	Topic      string `json:"topic"`
	MessageID  string `json:"message_id,omitempty"`
	Expires    int64  `json:"expires,omitempty"`
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"body_base64,omitempty"`
}

func pushJSON(p *client.Push) []byte {
	l := watchLine{Seq: p.Seq, Epoch: p.Epoch, Topic: p.Topic, MessageID: p.MessageID}
	if !p.Expires.IsZero() {
		l.Expires = p.Expires.UnixMilli()
	}
	if utf8.Valid(p.Body) {
		l.Body = string(p.Body)
	} else {
		l.BodyBase64 = base64.StdEncoding.EncodeToString(p.Body)
	}
	b, _ := json.Marshal(l) // strings and integers only: cannot fail
	return b
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
