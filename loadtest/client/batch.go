package client

import (
	"time"
)

// pendingConn is a connection with requests fired since the last Flush: their streams,
// registered as in flight when fired, written together by Flush.
type pendingConn struct {
	cn      *conn
	streams []uint32
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
	cn.mu.Lock()
	s, ok := cn.nextStreamLocked(intended, 0)
	cn.mu.Unlock()
	if !ok {
		c.resend(intended, 0, cn)
		return
	}
	if cn.batchIdx == 0 {
		c.pending = append(c.pending, pendingConn{cn: cn, streams: c.spareStreams()})
		cn.batchIdx = len(c.pending)
	}
	p := &c.pending[cn.batchIdx-1]
	p.streams = append(p.streams, s)
}

// Flush writes the requests FireQueued queued, each connection's in one write.
func (c *Client) Flush() {
	if len(c.pending) == 0 {
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for i := range c.pending {
		p := &c.pending[i]
		cn := p.cn
		cn.batchIdx = 0
		b := (*bp)[:0]
		cn.mu.Lock()
		for _, s := range p.streams {
			b = c.reqs.build(b, cn, s)
		}
		cn.mu.Unlock()
		*bp = b
		if err := cn.nc.Write(b); err != nil {
			for _, s := range p.streams {
				cn.unsent(s)
			}
		}
		c.spare = append(c.spare, p.streams[:0])
		*p = pendingConn{}
	}
	c.pending = c.pending[:0]
}

func (c *Client) spareStreams() []uint32 {
	if n := len(c.spare); n > 0 {
		s := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return s
	}
	return make([]uint32, 0, 4)
}
