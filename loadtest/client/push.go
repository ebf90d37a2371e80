package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/netpoll"
)

// PushConfig turns the client's connections into devices that receive pushes (mmtp.md,
// "Push delivery") and lets Publish send pushes to them through the gateway's admin API.
// Each device keeps its place in its log across its connections, as an app does with
// codec/mmtp/client's PushCursor: HELLO resumes from it, a redelivered (epoch, seq)
// already processed is acknowledged and dropped.
type PushConfig struct {
	// AdminURL is the admin listener's base URL; Publish posts to AdminURL + "/v1/push".
	AdminURL string `json:"admin_url"`
	Token    string `json:"token,omitempty"` // bearer token of the admin API
	// Topic marks this run's pushes: a push with another topic (left in a device's log by
	// an earlier run) is acknowledged and counted stale, not delivered.
	Topic string `json:"topic"`
	// CrashEvery makes every CrashEvery-th push a worker's devices receive end its
	// connection before it is processed or acknowledged (an app killed mid-push): the
	// gateway must deliver it again on the device's next connection. 0: never.
	CrashEvery uint64 `json:"crash_every,omitempty"`
}

// Error kinds of the push scenario.
const (
	ErrPublish        = "publish"         // the admin API could not be reached
	ErrPublishBacklog = "publish_backlog" // maxPublishing publishes were still in flight
	ErrPushNoSeq      = "push_no_seq"     // a PUSH without seq/epoch: not a revision-2 gateway
)

// maxPublishing bounds the publishes in flight, so that a stalled admin API costs
// counted errors rather than an unbounded pile of goroutines.
const maxPublishing = 256

// pushDevice is one device's push state; it outlives the device's connections.
type pushDevice struct {
	mu      sync.Mutex
	epoch   string
	seq     uint64 // the last processed
	arrived uint64 // the highest seq of this epoch that arrived, processed or not
	// published counts pushes the admin API accepted for this device, processed those of
	// this run's topic the device processed (each once).
	published, processed uint64
}

// pushState is the client's push side; nil unless Config.Push is set.
type pushState struct {
	devs    []pushDevice // by connection slot
	http    *http.Client
	sem     chan struct{}
	pending sync.WaitGroup
	rr      atomic.Uint64

	received, acked, duplicates, redelivered, stale, resets, crashes atomic.Uint64
}

func newPushState(n int, timeout time.Duration) *pushState {
	return &pushState{
		devs: make([]pushDevice, n),
		http: &http.Client{Timeout: timeout, Transport: &http.Transport{
			MaxIdleConns: maxPublishing, MaxIdleConnsPerHost: maxPublishing, IdleConnTimeout: 30 * time.Second}},
		sem: make(chan struct{}, maxPublishing),
	}
}

// PushFigures are the push scenario's counts.
type PushFigures struct {
	Published  uint64 // accepted by the admin API (202)
	Received   uint64 // PUSH frames that arrived, redeliveries and duplicates included
	Processed  uint64 // pushes of this run handled, each (epoch, seq) once
	Acked      uint64 // PUSH_ACKs written
	Duplicates uint64 // an (epoch, seq) already processed arrived again: acked, dropped
	// Redelivered: a push that arrived but was not processed (a crash) arrived again. Each
	// crash is followed by one, once the device is back.
	Redelivered uint64
	Stale       uint64 // pushes of an earlier run's topic
	Resets      uint64 // the device's epoch changed: the gateway lost history
	Crashes     uint64 // connections ended on purpose before processing a push
	// Lost: published but never processed. A gateway that keeps its promise loses none
	// (unless it said so with a reset).
	Lost uint64
}

// PushFigures returns the counts now; Lost is final only once every publish returned and
// the devices had time to receive what was published.
func (c *Client) PushFigures() PushFigures {
	p := c.push
	if p == nil {
		return PushFigures{}
	}
	f := PushFigures{Received: p.received.Load(), Acked: p.acked.Load(), Duplicates: p.duplicates.Load(),
		Redelivered: p.redelivered.Load(), Stale: p.stale.Load(), Resets: p.resets.Load(), Crashes: p.crashes.Load()}
	for i := range p.devs {
		d := &p.devs[i]
		d.mu.Lock()
		f.Published += d.published
		f.Processed += d.processed
		if d.published > d.processed {
			f.Lost += d.published - d.processed
		}
		d.mu.Unlock()
	}
	return f
}

// Publish sends one push, intended at the given time, to the next device (round robin
// over all of this client's devices, connected or not: the gateway keeps it in the log).
// The body is the intended time, so the device charges the delivery latency from it. It
// never blocks: the POST runs on its own goroutine, at most maxPublishing at once.
func (c *Client) Publish(intended time.Time) {
	p := c.push
	c.sent.Add(1)
	select {
	case p.sem <- struct{}{}:
	default:
		c.countErr(ErrPublishBacklog, 1)
		return
	}
	k := int(p.rr.Add(1)-1) % len(p.devs)
	p.pending.Add(1)
	go func() {
		defer func() { <-p.sem; p.pending.Done() }()
		c.publish(k, intended)
	}()
}

// KeepDialed dials every empty slot again, every interval, until ctx ends: devices whose
// connection ended (a planned crash, the gateway) come back and resume their logs.
func (c *Client) KeepDialed(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Ramp(ctx, 0, nil)
		}
	}
}

// WaitPublished waits until every Publish has its answer.
func (c *Client) WaitPublished() { c.push.pending.Wait() }

func (c *Client) publish(k int, intended time.Time) {
	cfg := c.cfg.Push
	body, _ := json.Marshal(map[string]string{"app": c.cfg.AppID, "device": c.deviceID(k), "topic": cfg.Topic,
		"body": strconv.FormatInt(intended.UnixNano(), 10)}) // strings only: cannot fail
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(cfg.AdminURL, "/")+"/v1/push", bytes.NewReader(body))
	if err != nil {
		c.countErr(ErrPublish, 1)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := c.push.http.Do(req)
	if err != nil {
		c.countErr(ErrPublish, 1)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.countErr("publish_"+statusKind(resp.StatusCode), 1)
		return
	}
	d := &c.push.devs[k]
	d.mu.Lock()
	d.published++
	d.mu.Unlock()
}

// deviceID is the device-id of connection slot i.
func (c *Client) deviceID(i int) string {
	return c.cfg.DevicePrefix + strconv.Itoa(c.cfg.ConnOffset+i)
}

// resumeHeader is what slot i's HELLO carries to resume its log.
func (p *pushState) resumeHeader(i int) (epoch string, seq uint64) {
	d := &p.devs[i]
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch, d.seq
}

// helloAnswered takes the HELLO 200's push fields: a reset or another epoch starts the
// device over in the new epoch.
func (p *pushState) helloAnswered(i int, f *mmtp.Frame) {
	e, ok := f.Get("push-epoch")
	if !ok {
		return
	}
	r, _ := f.Get("push-reset")
	reset := string(r) == "1"
	d := &p.devs[i]
	d.mu.Lock()
	defer d.mu.Unlock()
	if reset || (d.epoch != "" && d.epoch != string(e)) {
		p.resets.Add(1)
	}
	if reset || d.epoch != string(e) {
		d.epoch, d.seq, d.arrived = string(e), 0, 0
	}
}

// onPush handles one PUSH on cn: it processes a new (epoch, seq) and acknowledges it,
// acknowledges a duplicate without processing it, and on a planned crash closes the
// connection without either. It reports whether the connection was closed.
func (cn *conn) onPush(c netpoll.Conn, f *mmtp.Frame) (closed bool) {
	p := cn.cl.push
	p.received.Add(1)
	seqV, _ := f.Get("seq")
	e, _ := f.Get("epoch")
	seq, err := strconv.ParseUint(string(seqV), 10, 64)
	if err != nil || len(e) == 0 {
		cn.cl.countErr(ErrPushNoSeq, 1)
		cn.ack(c, f.StreamID)
		return false
	}
	d := &p.devs[cn.idx]
	d.mu.Lock()
	if d.epoch != string(e) {
		if d.epoch != "" {
			p.resets.Add(1) // the log's epoch changed under a live connection
		}
		d.epoch, d.seq, d.arrived = string(e), 0, 0
	}
	dup := seq <= d.seq
	if !dup && seq <= d.arrived {
		p.redelivered.Add(1)
	}
	d.arrived = max(d.arrived, seq)
	if !dup && cn.cl.cfg.Push.CrashEvery > 0 && p.received.Load()%cn.cl.cfg.Push.CrashEvery == 0 {
		d.mu.Unlock()
		p.crashes.Add(1)
		if cn.live.Swap(false) {
			cn.cl.open.Add(-1)
		}
		c.Close()
		return true
	}
	if dup {
		p.duplicates.Add(1)
	} else {
		d.seq = seq
		topic, _ := f.Get("topic")
		if string(topic) == cn.cl.cfg.Push.Topic {
			d.processed++
			if ns, err := strconv.ParseInt(string(f.Body), 10, 64); err == nil {
				cn.cl.rec.Record(int64(time.Since(time.Unix(0, ns))))
			}
			cn.cl.ok.Add(1)
		} else {
			p.stale.Add(1)
		}
	}
	d.mu.Unlock()
	cn.ack(c, f.StreamID)
	return false
}

func (cn *conn) ack(c netpoll.Conn, stream uint32) {
	if c.Write(mmtp.AppendPushAck(nil, stream)) == nil {
		cn.cl.push.acked.Add(1)
	}
}
