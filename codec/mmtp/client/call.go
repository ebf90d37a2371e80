package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// Call sends a REQUEST for operation op and waits for its RESPONSE. hdr may add or override
// headers (`app-id` etc. from Options are added only when hdr lacks them); body is sent as
// is. The response body is as received: when resp.Gzip is set it is still compressed
// (mmtp.Decompress). A request-level error (4xx/5xx) is a normal response, not an error.
// Errors: ctx's error when it ends first (a late response is then dropped), *GoAwayError
// (retryable), *ConnError, ErrClosed.
func (c *Client) Call(ctx context.Context, op string, hdr codec.Header, body []byte) (*codec.Response, error) {
	return c.call(ctx, mmtp.TypeRequest, op, hdr, body, false)
}

// CallGzip is Call with the body gzip-compressed on the wire (GZIP flag set; the signature
// covers the compressed bytes, as mmtp.md requires).
func (c *Client) CallGzip(ctx context.Context, op string, hdr codec.Header, body []byte) (*codec.Response, error) {
	return c.call(ctx, mmtp.TypeRequest, op, hdr, mmtp.Compress(nil, body), true)
}

func (c *Client) hello(ctx context.Context) error {
	resp, err := c.call(ctx, mmtp.TypeHello, "", c.resumeHeader(), nil, false)
	if err != nil {
		return fmt.Errorf("mmtp client: HELLO: %w", err)
	}
	if resp.Status != 200 {
		return &HelloError{Status: resp.Status, Code: resp.Header.Value("error"), Reason: string(resp.Body)}
	}
	return nil
}

func (c *Client) call(ctx context.Context, typ mmtp.Type, op string, hdr codec.Header, body []byte, gz bool) (*codec.Response, error) {
	if _, ok := ctx.Deadline(); !ok && c.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	h := c.requestHeader(typ, op, hdr, body)
	ch := make(chan result, 1)
	id, err := c.register(ch, typ == mmtp.TypeHello)
	if err != nil {
		return nil, err
	}
	if err := c.writeFrame(func(b []byte) []byte {
		flags := uint8(0)
		if gz {
			flags = mmtp.FlagGzip
		}
		return mmtp.AppendFrame(b, typ, flags, id, h, body)
	}); err != nil {
		c.unregister(id)
		c.mu.Lock()
		away := c.away
		c.mu.Unlock()
		if away != nil && id > away.LastStreamID {
			return nil, &GoAwayError{LastStreamID: away.LastStreamID, Reason: away.Reason}
		}
		return nil, err
	}
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		c.unregister(id)
		return nil, fmt.Errorf("mmtp client: %s stream %d: %w", opName(typ, op), id, ctx.Err())
	}
}

func opName(typ mmtp.Type, op string) string {
	if typ == mmtp.TypeHello {
		return "HELLO"
	}
	return strconv.Quote(op)
}

// requestHeader builds the wire header: operation-type, identity, caller's fields, and
// the signature fields when a secret is set.
func (c *Client) requestHeader(typ mmtp.Type, op string, hdr codec.Header, body []byte) codec.Header {
	h := make(codec.Header, 0, len(hdr)+7)
	if typ == mmtp.TypeRequest {
		h = append(h, codec.Field{Key: "operation-type", Value: op})
	}
	h = append(h, hdr...)
	addIf := func(k, v string) {
		if _, ok := h.Get(k); !ok && v != "" {
			h = append(h, codec.Field{Key: k, Value: v})
		}
	}
	addIf("app-id", c.opts.AppID)
	addIf("device-id", c.opts.DeviceID)
	addIf("user-id", c.opts.UserID)
	if len(c.opts.Secret) == 0 {
		return h
	}
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	var nb [12]byte
	_, _ = rand.Read(nb[:]) // crypto/rand never fails on Linux
	h.Set("timestamp", ts)
	h.Set("nonce", hex.EncodeToString(nb[:]))
	sf := mmtp.SignFields{
		Operation: op,
		AppID:     h.Value("app-id"),
		DeviceID:  h.Value("device-id"),
		Timestamp: ts,
		Nonce:     h.Value("nonce"),
		Body:      body,
	}
	if typ == mmtp.TypeHello {
		sf.Operation = mmtp.HelloOperation
	}
	h.Set("sign", mmtp.Sign(c.opts.Secret, &sf))
	return h
}

// register hands out a stream id not in flight and records ch for its response (and,
// for a HELLO, the stream whose response the reader reads push fields from).
func (c *Client) register(ch chan result, hello bool) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.away != nil {
		// Before broken: after GOAWAY the gateway closes, and a call refused now was
		// still never sent (retryable), whatever ended the connection since.
		return 0, &GoAwayError{LastStreamID: c.away.LastStreamID, Reason: c.away.Reason}
	}
	if c.broken != nil {
		return 0, c.broken
	}
	for {
		c.next++
		if c.next == 0 {
			c.next = 1 // stream 0 is reserved for connection-level frames
		}
		if _, busy := c.calls[c.next]; !busy {
			break
		}
	}
	c.calls[c.next] = ch
	if hello {
		c.helloID = c.next
	}
	return c.next, nil
}

func (c *Client) unregister(id uint32) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// Ping sends a PING and returns the round-trip time until its PONG. Options.Timeout bounds
// it when ctx has no deadline.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	if _, ok := ctx.Deadline(); !ok && c.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return 0, err
	}
	c.pingSeq++
	seq := c.pingSeq
	c.pings[seq] = ch
	c.mu.Unlock()
	var payload [8]byte
	binary.BigEndian.PutUint64(payload[:], seq)
	start := time.Now()
	if err := c.writeFrame(func(b []byte) []byte { return mmtp.AppendPing(b, payload[:]) }); err != nil {
		c.dropPing(seq)
		return 0, err
	}
	select {
	case _, ok := <-ch:
		if !ok {
			return 0, c.Err()
		}
		return time.Since(start), nil
	case <-ctx.Done():
		c.dropPing(seq)
		return 0, fmt.Errorf("mmtp client: PING: %w", ctx.Err())
	}
}

func (c *Client) dropPing(seq uint64) {
	c.mu.Lock()
	delete(c.pings, seq)
	c.mu.Unlock()
}

// writeFrame encodes one frame with enc into the shared write buffer and writes it. A
// failed write may leave a partial frame on the wire, so it breaks the connection.
func (c *Client) writeFrame(enc func([]byte) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = enc(c.wbuf[:0])
	if c.opts.Trace != nil {
		if f, _, err := mmtp.Parse(c.wbuf, &mmtp.Limits{MaxHeaderBytes: mmtp.MaxHeaderBlock, MaxBodyBytes: 1 << 31, MaxEntries: 1 << 20}); err == nil {
			c.opts.Trace("send", &f)
		}
	}
	err := c.writeLocked(c.wbuf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not pin a large body's buffer
	}
	return err
}

func (c *Client) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

func (c *Client) writeLocked(b []byte) error {
	c.mu.Lock()
	broken := c.broken
	c.mu.Unlock()
	if broken != nil {
		// A call that registered before the connection broke: it is not sent.
		var ce *ConnError
		if errors.As(broken, &ce) {
			return &ConnError{Op: ce.Op, Err: ce.Err, Unsent: true}
		}
		return broken
	}
	if c.opts.Timeout > 0 {
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.Timeout))
	}
	if _, err := c.conn.Write(b); err != nil {
		// This frame did not (wholly) leave, so the gateway never took it, and nothing
		// more can be written after half a frame. The calls sent before may still be
		// answered, though (a gateway that sent GOAWAY answers what it accepted, then
		// closes): stop writing, and let the reader take those answers until the peer
		// closes. Failing them now turned answered requests into lost ones.
		c.mu.Lock()
		if c.broken == nil {
			c.broken = &ConnError{Op: "write", Err: err}
		}
		c.mu.Unlock()
		if cw, ok := c.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			if c.opts.Timeout > 0 {
				_ = c.conn.SetReadDeadline(time.Now().Add(c.opts.Timeout))
			}
		} else {
			c.fail(&ConnError{Op: "write", Err: err})
			_ = c.conn.Close()
		}
		return &ConnError{Op: "write", Err: err, Unsent: true}
	}
	return nil
}
