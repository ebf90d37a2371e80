package upstream

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// healthLoop probes one host every interval until ctx ends. It is the only writer of
// h.healthy after New, so transitions and the gauge stay consistent without a lock.
func (c *Cluster) healthLoop(ctx context.Context, h *host) {
	defer c.wg.Done()
	hc := c.cfg.HealthCheck
	interval := orDuration(hc.Interval.D(), DefaultHealthInterval)
	timeout := orDuration(hc.Timeout.D(), DefaultHealthTimeout)
	healthyN := orInt(hc.HealthyThreshold, DefaultHealthyThreshold)
	unhealthyN := orInt(hc.UnhealthyThreshold, DefaultUnhealthyThreshold)

	// The first probe comes after a random part of the interval, so the hosts of many
	// clusters do not probe in lockstep.
	t := time.NewTimer(rand.N(interval/4 + 1))
	defer t.Stop()
	okRun, failRun := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.probe(ctx, h, hc.Path, timeout)
		if ctx.Err() != nil {
			return // shutting down: the probe's failure says nothing about the host
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if !h.healthy.Load() && okRun >= healthyN {
				h.healthy.Store(true)
				c.log.Info("upstream host healthy", "host", h.name)
			}
		} else {
			okRun, failRun = 0, failRun+1
			h.m.healthChecksFailed.Inc()
			if h.healthy.Load() && failRun >= unhealthyN {
				h.healthy.Store(false)
				c.log.Warn("upstream host unhealthy", "host", h.name, "err", err)
			}
		}
		t.Reset(interval)
	}
}

// probe is one health check: GET path answered 2xx within timeout. It uses the
// cluster's probe Transport, so a healthy host's probe reuses a kept-alive connection.
func (c *Cluster) probe(ctx context.Context, h *host, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "mgw-health-check")
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused; a huge health page is not.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: status %d", path, resp.StatusCode)
	}
	return nil
}
