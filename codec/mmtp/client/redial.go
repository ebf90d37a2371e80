package client

import (
	"context"
	"errors"
	"time"
)

// Redial backoff between failed attempts: short enough to catch a restarting gateway
// quickly, long enough not to hammer one that is down.
const (
	redialMin = 100 * time.Millisecond
	redialMax = 5 * time.Second
	// goAwayGrace bounds how long a connection that got GOAWAY is left to finish its
	// accepted calls when Options.Timeout is zero; the gateway closes it itself by then.
	goAwayGrace = 30 * time.Second
)

// Redial keeps a device connected until ctx ends. It dials addr with opts, hands each new
// client to connected (nil: none; it runs on Redial's goroutine and must not block), and
// when the connection ends (GOAWAY, closed by the gateway, broken) or a dial fails, it
// dials again: at once after an orderly GOAWAY, else after a wait that doubles from
// 100 ms to 5 s while attempts keep failing. lost (nil: none) hears each failure and the
// wait before the next attempt. Give opts a Push cursor so that every connection resumes
// where the previous one stopped.
//
// It returns ctx.Err() once ctx ends and the last client is closed, or a *HelloError
// with a 4xx status, which another attempt would get too.
func Redial(ctx context.Context, addr string, opts Options, connected func(*Client), lost func(err error, wait time.Duration)) error {
	var failWait time.Duration // grows while dials keep failing
	for {
		var wait time.Duration
		c, err := Dial(ctx, addr, opts)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var he *HelloError
			if errors.As(err, &he) && he.Status >= 400 && he.Status < 500 {
				return err
			}
			failWait = min(max(2*failWait, redialMin), redialMax)
			wait = failWait
		} else {
			failWait = 0
			if connected != nil {
				connected(c)
			}
			err = c.await(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ge *GoAwayError
			if !errors.As(err, &ge) {
				wait = redialMin // broken rather than drained: do not spin on a failing peer
			}
		}
		if lost != nil {
			lost(err, wait)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// await waits until the connection is over or ctx ends, closes it, and says why it ended.
// After GOAWAY it gives the gateway a grace period to answer what it accepted and close.
func (c *Client) await(ctx context.Context) error {
	defer c.Close()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Done():
		if _, _, away := c.GoAwayInfo(); !away {
			return c.Err()
		}
		// Both ready: the close that follows a GOAWAY is still an orderly end.
	case <-c.GoAway():
	}
	grace := goAwayGrace
	if c.opts.Timeout > 0 {
		grace = c.opts.Timeout
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Done():
	case <-t.C:
	}
	last, reason, _ := c.GoAwayInfo()
	return &GoAwayError{LastStreamID: last, Reason: reason}
}
