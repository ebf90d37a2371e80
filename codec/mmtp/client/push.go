package client

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// Push is one PUSH as the app sees it (mmtp.md, "Push delivery").
type Push struct {
	// StreamID is the gateway's stream id for this push; it means nothing past the ack.
	StreamID uint32
	// Topic is the `topic` header ("" when the gateway sent none).
	Topic string
	// Seq and Epoch are the message's place in the device's log; both are zero when the
	// gateway speaks revision 1 and sends neither.
	Seq   uint64
	Epoch string
	// MessageID is the publisher's `message-id`, "" when absent.
	MessageID string
	// Expires is the `expires` time, zero when absent. The gateway does not deliver a
	// message past it; the client hands it over regardless and leaves the judgement to the app.
	Expires time.Time
	// Header holds every header except `topic`, `seq` and `epoch` included, as received.
	Header codec.Header
	// Body is the body, gunzipped when the GZIP flag was set. The app may keep it.
	Body []byte
}

// PushCursor is the last push an app processed on one device: (epoch, seq). The app keeps
// one across connections (Options.Push) so that each HELLO resumes where the last
// connection stopped and redeliveries are recognised; it may persist Position and rebuild
// the cursor with NewPushCursor after a restart. It is safe for concurrent use, but it
// describes one device's log, so give it to one connection at a time.
type PushCursor struct {
	mu    sync.Mutex
	epoch string
	seq   uint64
}

// NewPushCursor returns a cursor at a saved position; NewPushCursor("", 0) (or a zero
// PushCursor) knows nothing yet and takes the gateway's epoch at the first HELLO.
func NewPushCursor(epoch string, seq uint64) *PushCursor {
	return &PushCursor{epoch: epoch, seq: seq}
}

// Position is the last processed push: its epoch ("" before any HELLO or push said one)
// and seq (0 when nothing of that epoch was processed yet).
func (p *PushCursor) Position() (epoch string, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, p.seq
}

// Epoch and Seq are Position's two halves.
func (p *PushCursor) Epoch() string { e, _ := p.Position(); return e }
func (p *PushCursor) Seq() uint64   { _, s := p.Position(); return s }

// adopt moves the cursor to the start of epoch when it is in another one (or reset says
// history was lost). It reports whether the app lost history: reset, or a move away from
// an epoch it already had. Taking the first epoch ever is no loss.
func (p *PushCursor) adopt(epoch string, reset bool) (lost bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !reset && p.epoch == epoch {
		return false
	}
	lost = reset || p.epoch != ""
	p.epoch, p.seq = epoch, 0
	return lost
}

// seen reports whether (epoch, seq) was already processed; the caller has adopted epoch.
func (p *PushCursor) seen(epoch string, seq uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch == epoch && seq <= p.seq
}

// advance records (epoch, seq) as processed. An epoch the cursor left meanwhile (a HELLO
// reset raced the handler) is not recorded.
func (p *PushCursor) advance(epoch string, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch == epoch && seq > p.seq {
		p.seq = seq
	}
}

// PushLog is what the HELLO's 200 response said about the device's push log.
type PushLog struct {
	// Epoch is `push-epoch`: "" when the gateway sent none (revision 1, or no HELLO yet).
	Epoch string
	// Seq is `push-seq`: the highest seq the gateway assigned so far (0: empty log).
	Seq uint64
	// Reset is `push-reset: 1`: the gateway could not resume from the client's cursor.
	Reset bool
}

// PushLog returns what the HELLO's response said about push; zero before a HELLO
// succeeded or when the gateway does not speak revision 2.
func (c *Client) PushLog() PushLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pushLog
}

// resumeHeader is what a HELLO adds so that the gateway resumes from the cursor.
func (c *Client) resumeHeader() codec.Header {
	if c.opts.Push == nil {
		return nil
	}
	epoch, seq := c.opts.Push.Position()
	if epoch == "" {
		return nil // "send me everything the log holds"
	}
	return codec.Header{
		{Key: "push-epoch", Value: epoch},
		{Key: "push-seq", Value: strconv.FormatUint(seq, 10)},
	}
}

// helloAnswered reads the push fields of the HELLO's 200 response and moves the cursor.
// It runs on the reader goroutine, before any PUSH that follows the response, so a reset
// is seen before the pushes of the new epoch.
func (c *Client) helloAnswered(r *codec.Response) error {
	epoch, ok := r.Header.Get("push-epoch")
	if !ok {
		return nil // a revision-1 gateway: pushes come without seq
	}
	if err := checkEpoch(epoch); err != nil {
		return headerErr("HELLO response: push-epoch", err)
	}
	seq, err := parseSeq(r.Header.Value("push-seq"), true)
	if err != nil {
		return headerErr("HELLO response: push-seq", err)
	}
	reset := r.Header.Value("push-reset") == "1"
	c.mu.Lock()
	c.pushLog = PushLog{Epoch: epoch, Seq: seq, Reset: reset}
	c.mu.Unlock()
	if c.opts.Push != nil && c.opts.Push.adopt(epoch, reset) && c.opts.OnPushReset != nil {
		c.opts.OnPushReset(epoch)
	}
	return nil
}

// push handles one PUSH: a duplicate of a processed (epoch, seq) is acknowledged without
// the handler; anything else goes to the handler, then is acknowledged, then recorded in
// the cursor. The ack follows the handler so that the gateway keeps the message until the
// app has it; recording follows the ack so that a cursor someone persists never runs ahead
// of what the gateway was told.
func (c *Client) push(f *mmtp.Frame) error {
	p, err := parsePush(f)
	if err != nil {
		return err
	}
	c.pushMu.Lock()
	defer c.pushMu.Unlock()
	if c.closing.Load() || c.declined || c.Err() != nil {
		// Neither handle nor ack: the gateway sends it again on the next connection.
		return nil
	}
	cur := c.opts.Push
	track := cur != nil && p.Epoch != ""
	if track && cur.adopt(p.Epoch, false) && c.opts.OnPushReset != nil {
		// The log's epoch changed under a live connection: history was lost.
		c.opts.OnPushReset(p.Epoch)
	}
	if !track || !cur.seen(p.Epoch, p.Seq) {
		p.Body = append([]byte(nil), f.Body...)
		if f.Gzip() {
			if p.Body, err = mmtp.Decompress(nil, f.Body, c.lim.MaxBodyBytes); err != nil {
				return fmt.Errorf("PUSH stream %d (seq %d): body: %w", f.StreamID, p.Seq, err)
			}
		}
		switch {
		case c.opts.OnPushMessage != nil:
			if c.opts.OnPushMessage(p) != nil {
				c.declined = true
				return nil
			}
		case c.opts.OnPush != nil:
			c.opts.OnPush(p.Topic, p.Header, p.Body)
		}
	} else {
		track = false // a duplicate: nothing to record
	}
	// Processed, so recorded before the ack goes out: whoever sees the ack sees the
	// cursor past it. An ack that is lost makes the gateway send the push again, and
	// the cursor then drops it as a duplicate (and acks it).
	if track {
		cur.advance(p.Epoch, p.Seq)
	}
	stream := f.StreamID
	_ = c.writeFrame(func(b []byte) []byte { return mmtp.AppendPushAck(b, stream) })
	return nil
}

// parsePush copies a PUSH's headers out of the read buffer (the body is left to the
// caller, which skips it for duplicates) and checks `seq`, `epoch` and `expires`. A PUSH
// with neither seq nor epoch is a revision-1 push; one without the other is an error.
func parsePush(f *mmtp.Frame) (*Push, error) {
	p := &Push{StreamID: f.StreamID, Header: make(codec.Header, 0, f.Entries)}
	f.Each(func(k, v []byte) bool {
		if string(k) == "topic" {
			p.Topic = string(v)
		} else {
			p.Header = append(p.Header, codec.Field{Key: string(k), Value: string(v)})
		}
		return true
	})
	bad := func(field string, err error) error {
		return headerErr(fmt.Sprintf("PUSH stream %d: %s", f.StreamID, field), err)
	}
	seqV, hasSeq := p.Header.Get("seq")
	epoch, hasEpoch := p.Header.Get("epoch")
	switch {
	case hasSeq && hasEpoch:
		if err := checkEpoch(epoch); err != nil {
			return nil, bad("epoch", err)
		}
		seq, err := parseSeq(seqV, false)
		if err != nil {
			return nil, bad("seq", err)
		}
		p.Seq, p.Epoch = seq, epoch
	case hasSeq:
		return nil, bad("epoch", fmt.Errorf("missing while seq %q is present", seqV))
	case hasEpoch:
		return nil, bad("seq", fmt.Errorf("missing while epoch %q is present", epoch))
	}
	p.MessageID = p.Header.Value("message-id")
	if v, ok := p.Header.Get("expires"); ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return nil, bad("expires", fmt.Errorf("%q is not Unix milliseconds", v))
		}
		p.Expires = time.UnixMilli(ms)
	}
	return p, nil
}

// headerErr makes a malformed push header a protocol error: the gateway broke the
// contract, and the connection ends, as for a RESPONSE without `status`.
func headerErr(what string, err error) error {
	return &mmtp.ProtocolError{Offset: mmtp.HeaderSize, Field: mmtp.FieldHeader, Reason: what + ": " + err.Error()}
}

// checkEpoch applies mmtp.md's epoch rule: 1 to 64 bytes of [A-Za-z0-9._-].
func checkEpoch(e string) error {
	if e == "" || len(e) > 64 {
		return fmt.Errorf("%q is not 1 to 64 bytes long", e)
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q has byte %q at offset %d, outside [A-Za-z0-9._-]", e, c, i)
		}
	}
	return nil
}

// parseSeq reads a decimal seq; a PUSH's starts at 1, a HELLO's push-seq may be 0.
func parseSeq(v string, zeroOK bool) (uint64, error) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%q is not decimal (byte %q at offset %d)", v, v[i], i)
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal sequence number", v)
	}
	if n == 0 && !zeroOK {
		return 0, fmt.Errorf("%q: a PUSH's seq starts at 1", v)
	}
	return n, nil
}
