package client

import (
	"time"
)

// pendingConn is a connection picked for requests since the last Flush, with their
// intended send times. Streams are taken at Flush, in the order they are written, so a
// request sent meanwhile on the same connection (a resend from another goroutine) can
// never go out with a higher stream id ahead of a queued one: a GOAWAY's
// last-stream-id would then cover a request the gateway never took.
type pendingConn struct {
	cn       *conn
	intended []time.Time
}

// FireQueued is Fire for MMTP that only queues the request: Flush writes what was
// queued, one write per connection. An open-loop schedule that has fallen behind fires
// many requests at once, several per connection; one write each made the scheduler's
// goroutine the harness's bottleneck past 30,000 calls a second (a write on loopback also
// runs the receiving side's TCP work), and its lateness is charged to every latency.
// Only the schedule's goroutine may call FireQueued and Flush. HTTP requests are sent
// at once, as Fire does.
func (c *Client) FireQueued(intended time.Time) {
	if c.cfg.Protocol != "mmtp" {
		c.Fire(intended)
		return
	}
	c.sent.Add(1)
	cn := c.pick()
	if cn == nil {
		c.countErr(ErrNoConn, 1)
		return
	}
	if cn.batchIdx == 0 {
		c.pending = append(c.pending, pendingConn{cn: cn, intended: c.spareTimes()})
		cn.batchIdx = len(c.pending)
	}
	p := &c.pending[cn.batchIdx-1]
	p.intended = append(p.intended, intended)
}

// Flush writes the requests FireQueued queued, each connection's in one write. A
// connection that closed or had a GOAWAY meanwhile never carried them: they go out on
// another, as a refused request does.
func (c *Client) Flush() {
	if len(c.pending) == 0 {
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var streams []uint32
	for i := range c.pending {
		p := &c.pending[i]
		cn := p.cn
		cn.batchIdx = 0
		b := (*bp)[:0]
		streams = streams[:0]
		now := time.Now() // the batch goes out in one write
		cn.mu.Lock()
		for _, t := range p.intended {
			if cn.closed.Load() {
				break
			}
			s, ok := cn.nextStreamAtLocked(t, now, 0)
			if !ok {
				break
			}
			b = c.reqs.build(b, cn, s)
			streams = append(streams, s)
		}
		cn.mu.Unlock()
		*bp = b
		for _, t := range p.intended[len(streams):] {
			c.sentLate(t) // queued by the harness, never written: its own delay
			c.resend(t, 0, cn)
		}
		if len(b) > 0 {
			c.sentLate(p.intended[0]) // the batch's oldest
			if err := cn.nc.Write(b); err != nil {
				for _, s := range streams {
					cn.unsent(s)
				}
			}
		}
		c.spare = append(c.spare, p.intended[:0])
		*p = pendingConn{}
	}
	c.pending = c.pending[:0]
}

func (c *Client) spareTimes() []time.Time {
	if n := len(c.spare); n > 0 {
		s := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return s
	}
	return make([]time.Time, 0, 4)
}
