// Package client is a Go client for MMTP/1 (docs/mmtp.md): one multiplexed connection to
// the gateway, concurrent calls matched by stream id, HELLO and request signing, push
// delivery with automatic PUSH_ACK and resume across connections (PushCursor, Redial),
// PING, and GOAWAY handling. It uses an ordinary
// net.Conn and one reader goroutine per client; it is meant for apps, tools (`mgw call`)
// and tests, not for holding 100k connections (the load-test harness does that itself).
package client

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// Options configure a Client. Only the address is required.
type Options struct {
	// AppID, DeviceID and UserID are sent as `app-id`, `device-id`, `user-id` on HELLO and
	// on every call that does not carry its own; empty ones are omitted.
	AppID, DeviceID, UserID string
	// Secret, when set, signs HELLO and every call (timestamp, random nonce, sign).
	Secret []byte
	// Hello sends a HELLO on connect; Dial fails unless it is answered 200.
	Hello bool
	// Timeout bounds the dial and HELLO, each write, and a call whose context has no
	// deadline. Zero means no bound beyond the contexts.
	Timeout time.Duration
	// OnPush receives each PUSH: its `topic`, the other headers, and the body (gunzipped
	// when the GZIP flag was set). It runs on the reader goroutine, so it must not block
	// for long or call the client synchronously in a way that waits on a response; the
	// PUSH_ACK is sent after it returns. Nil: pushes are acknowledged and dropped.
	// With Push set, a redelivered push already processed does not reach it.
	OnPush func(topic string, hdr codec.Header, body []byte)
	// OnPushMessage is OnPush with the push's fields parsed (seq, epoch, message-id,
	// expires); when set, it is called instead of OnPush, under the same rules. Returning
	// an error declines the push and stops delivery on this connection: this push and every
	// later one are left unacknowledged and unrecorded, and the gateway sends them again
	// on the device's next connection (not on this one, so reconnect).
	OnPushMessage func(p *Push) error
	// Push, when set, makes push delivery resumable (mmtp.md revision 2): HELLO carries
	// the cursor's `push-epoch`/`push-seq`, the HELLO response's epoch is adopted, a PUSH
	// whose (epoch, seq) was already processed is acknowledged but not handed to the app,
	// and each handled push advances the cursor. Keep the same cursor across connections
	// to one device. Nil: every PUSH is handed over and acknowledged (revision 1).
	Push *PushCursor
	// OnPushReset tells the app that the gateway lost push history it had not delivered
	// (HELLO `push-reset: 1`, or the epoch changed): re-sync from the backend. epoch is
	// the new epoch; the cursor has moved to its start. It runs on the reader goroutine,
	// before any push of that epoch is handed over; for a HELLO, before Dial returns.
	OnPushReset func(epoch string)
	// OnGoAway is called once, on the reader goroutine, when the gateway sends GOAWAY.
	OnGoAway func(lastStreamID uint32, reason string)
	// Limits bound the frames the client accepts (nil: mmtp.DefaultLimits).
	Limits *mmtp.Limits
	// LocalAddr is the local address to dial from ("127.0.0.2:0"); empty: any.
	LocalAddr string
	// ProxyHeader is written before anything else, e.g. a PROXY protocol header in tests.
	ProxyHeader []byte
	// Trace, when set, sees every frame sent ("send") and received ("recv"), on the
	// goroutine that sends or receives it; f is valid only during the call.
	Trace func(dir string, f *mmtp.Frame)
}

// Client is one MMTP connection. All methods are safe for concurrent use.
type Client struct {
	conn net.Conn
	opts Options
	lim  mmtp.Limits

	wmu  sync.Mutex // serialises writes so frames never interleave
	wbuf []byte     // guarded by wmu

	mu      sync.Mutex
	next    uint32                 // last stream id handed out
	calls   map[uint32]chan result // in flight, by stream id
	pings   map[uint64]chan struct{}
	pingSeq uint64
	away    *GoAwayError // set once GOAWAY arrived
	broken  error        // set once the connection is done
	helloID uint32       // the HELLO's stream while it is unanswered
	pushLog PushLog      // from the HELLO's response

	// pushMu is held while a push is handled and acknowledged, so that Close never cuts
	// between the two: a push the app has handled is acknowledged.
	pushMu   sync.Mutex
	closing  atomic.Bool // set by Close before it waits for pushMu: hand over no more
	declined bool        // guarded by pushMu: OnPushMessage declined a push; hand over no more

	goaway chan struct{} // closed on GOAWAY
	done   chan struct{} // closed when the reader goroutine has exited
}

type result struct {
	resp *codec.Response
	err  error
}

// Dial connects to addr, writes opts.ProxyHeader, starts the reader and, with opts.Hello,
// performs the HELLO. The context bounds the dial and the HELLO only.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	var d net.Dialer
	if opts.LocalAddr != "" {
		la, err := net.ResolveTCPAddr("tcp", opts.LocalAddr)
		if err != nil {
			return nil, fmt.Errorf("mmtp client: local address %q: %w", opts.LocalAddr, err)
		}
		d.LocalAddr = la
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mmtp client: dial %s: %w", addr, err)
	}
	c := newClient(conn, opts)
	go c.readLoop() // first, so that every failure path below can Close (which waits for it)
	if len(opts.ProxyHeader) > 0 {
		if err := c.writeRaw(opts.ProxyHeader); err != nil {
			c.Close()
			return nil, err
		}
	}
	if opts.Hello {
		if err := c.hello(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func newClient(conn net.Conn, opts Options) *Client {
	return &Client{
		conn:   conn,
		opts:   opts,
		lim:    opts.Limits.Effective(),
		calls:  make(map[uint32]chan result),
		pings:  make(map[uint64]chan struct{}),
		goaway: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// LocalAddr and RemoteAddr are the connection's addresses.
func (c *Client) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c *Client) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// GoAway is closed when the gateway sends GOAWAY; GoAwayInfo then says what it said.
func (c *Client) GoAway() <-chan struct{} { return c.goaway }

// GoAwayInfo returns the GOAWAY's last-stream-id and reason, ok false before one arrived.
func (c *Client) GoAwayInfo() (lastStreamID uint32, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.away == nil {
		return 0, "", false
	}
	return c.away.LastStreamID, c.away.Reason, true
}

// Done is closed when the connection is finished (closed by either side or broken); Err
// then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is the reason the connection finished (ErrClosed after Close), nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// Close closes the connection and fails calls in flight with ErrClosed. A push being
// handled is let finish and acknowledged first; no other is handed over. It waits for the
// reader goroutine to exit, so no callback runs after it returns; hence it must not be
// called from a callback (OnPush, OnGoAway, Trace, ...) itself (start a goroutine for
// that). It may be called any number of times.
func (c *Client) Close() error {
	c.closing.Store(true)
	c.pushMu.Lock()
	c.fail(ErrClosed)
	c.pushMu.Unlock()
	err := c.conn.Close()
	<-c.done
	return err
}

// fail marks the connection finished with err (first cause wins) and fails every call and
// ping in flight.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	err = c.broken
	calls, pings := c.calls, c.pings
	c.calls, c.pings = map[uint32]chan result{}, map[uint64]chan struct{}{}
	c.mu.Unlock()
	for _, ch := range calls {
		ch <- result{err: err}
	}
	for _, ch := range pings {
		close(ch)
	}
}
