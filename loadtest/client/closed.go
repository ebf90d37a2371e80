package client

import "time"

// Closed loop: the opposite of Fire's schedule. StartClosed puts a fixed number of requests
// in flight on every open connection, and each answer (whatever its status) sends the next
// request on the connection it came from, at once. The target's speed alone sets the
// rate, so this measures throughput (calls per second, per CPU second of the target), not
// latency under a given load: a stall shows up as fewer calls, not as late ones. Latency is
// recorded from each request's actual send time.
//
// A request that times out (Sweep) or is lost with its connection ends its stream: the
// loop does not refill it, and the error counts say how many were lost.

// StartClosed sends streams requests on every open connection and keeps each stream going
// until StopClosed. It returns the number of streams started. HTTP/1.1 answers in order, so
// more than one stream per HTTP connection means pipelining.
func (c *Client) StartClosed(streams int) int {
	c.closedLoop.Store(true)
	n := 0
	live := c.liveConns()
	// Round by round rather than connection by connection, so every connection has work
	// from the first moment.
	for s := 0; s < streams; s++ {
		for _, cn := range live {
			c.sent.Add(1)
			cn.send(time.Now(), 0)
			n++
		}
	}
	return n
}

// StopClosed ends the loop: answers arriving from now on send nothing. The requests in
// flight still complete (InFlight tells how many are left).
func (c *Client) StopClosed() { c.closedLoop.Store(false) }
