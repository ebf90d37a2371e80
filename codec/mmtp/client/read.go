package client

import (
	"encoding/binary"
	"errors"
	"io"
	"net"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
)

// readLoop is the client's only reader: it owns the Decoder and runs until the connection
// ends, then fails whatever is still in flight.
func (c *Client) readLoop() {
	defer close(c.done)
	dec := mmtp.NewDecoder(&c.lim)
	for {
		f, err := dec.ReadFrame(c.conn)
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.opts.Trace != nil {
			c.opts.Trace("recv", &f)
		}
		if err := mmtp.CheckServerFrame(&f); err != nil {
			c.readFailed(err)
			return
		}
		if err := c.dispatch(&f); err != nil {
			c.readFailed(err)
			return
		}
	}
}

func (c *Client) readFailed(err error) {
	var pe *mmtp.ProtocolError
	switch {
	case errors.As(err, &pe):
		err = &ConnError{Op: "protocol", Err: err}
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		err = &ConnError{Op: "read", Err: io.EOF}
	default:
		err = &ConnError{Op: "read", Err: err}
	}
	c.fail(err)
	_ = c.conn.Close()
}

// dispatch handles one validated frame; an error ends the connection.
func (c *Client) dispatch(f *mmtp.Frame) error {
	switch f.Type {
	case mmtp.TypeResponse:
		c.mu.Lock()
		ch, ok := c.calls[f.StreamID]
		delete(c.calls, f.StreamID)
		hello := ok && f.StreamID == c.helloID
		if hello {
			c.helloID = 0
		}
		c.mu.Unlock()
		if ok { // else the call timed out or was refused: drop the late answer
			r := toResponse(f)
			if hello && r.Status == 200 {
				if err := c.helloAnswered(r); err != nil {
					ch <- result{err: &ConnError{Op: "protocol", Err: err}} // no longer in calls for fail to find
					return err
				}
			}
			ch <- result{resp: r}
		}
	case mmtp.TypePush:
		return c.push(f)
	case mmtp.TypePing:
		payload := append([]byte(nil), f.Body...)
		_ = c.writeFrame(func(b []byte) []byte { return mmtp.AppendPong(b, payload) })
	case mmtp.TypePong:
		if len(f.Body) != 8 {
			return nil // not one of ours
		}
		seq := binary.BigEndian.Uint64(f.Body)
		c.mu.Lock()
		ch, ok := c.pings[seq]
		delete(c.pings, seq)
		c.mu.Unlock()
		if ok {
			ch <- struct{}{}
		}
	case mmtp.TypeGoAway:
		c.goAway(f)
	}
	return nil
}

// goAway records the GOAWAY, fails the calls above last-stream-id (never processed) and
// refuses new ones; calls at or below it still get their responses.
func (c *Client) goAway(f *mmtp.Frame) {
	last, _ := mmtp.LastStreamID(f) // validated by CheckServerFrame
	reason, _ := f.Get("reason")
	ge := &GoAwayError{LastStreamID: last, Reason: string(reason)}
	c.mu.Lock()
	if c.away != nil {
		// A second GOAWAY may only lower last-stream-id; keep the first cause otherwise.
		if last >= c.away.LastStreamID {
			c.mu.Unlock()
			return
		}
	}
	first := c.away == nil
	c.away = ge
	var refused []chan result
	for id, ch := range c.calls {
		if id > last {
			refused = append(refused, ch)
			delete(c.calls, id)
		}
	}
	c.mu.Unlock()
	for _, ch := range refused {
		ch <- result{err: ge}
	}
	if first {
		close(c.goaway)
		if c.opts.OnGoAway != nil {
			c.opts.OnGoAway(last, ge.Reason)
		}
	}
}

// toResponse copies a RESPONSE out of the read buffer.
func toResponse(f *mmtp.Frame) *codec.Response {
	st, _ := mmtp.ResponseStatus(f) // validated by CheckServerFrame
	r := &codec.Response{Status: st, Gzip: f.Gzip(), Header: make(codec.Header, 0, f.Entries)}
	f.Each(func(k, v []byte) bool {
		if string(k) == "status" {
			return true // carried by Status
		}
		r.Header = append(r.Header, codec.Field{Key: string(k), Value: string(v)})
		return true
	})
	if len(f.Body) > 0 {
		r.Body = append([]byte(nil), f.Body...)
	}
	return r
}
