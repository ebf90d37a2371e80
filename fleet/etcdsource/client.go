package etcdsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// client speaks etcd's v3 API through the JSON gateway every etcd serves on its client
// URLs (POST /v3/kv/range, /v3/kv/txn, /v3/watch; etcd 3.4 and later). Why not
// go.etcd.io/etcd/client/v3: the source needs a prefix read, a watch and one kind of
// transaction, and the official client brings gRPC, protobuf and zap with it. Their
// package init alone cost each gateway process 4.5 MiB of RSS (3.6 MiB of touched binary
// pages, 0.9 MiB of heap), whether or not fleet.etcd is configured: 27 MiB over the six
// processes of a 100k-connection box (issue 21).
//
// Requests go to the endpoint that last answered; one that cannot be reached moves the
// client on to the next, within the call's context.
type client struct {
	endpoints []string // base URLs: http://host:port
	hc        *http.Client
	base      context.Context // canceled by close: ends watches and calls in flight
	stop      context.CancelFunc
	// callTimeout bounds a watch's liveness probe (the dial timeout), sent every
	// probeEvery.
	callTimeout, probeEvery time.Duration

	mu  sync.Mutex
	cur int
}

// maxReply bounds a range or transaction answer: far more than a config overlay needs.
const maxReply = 64 << 20

func newClient(endpoints []string, dialTimeout time.Duration) (*client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("endpoints: none given")
	}
	urls := make([]string, len(endpoints))
	for i, e := range endpoints {
		u, err := endpointURL(e)
		if err != nil {
			return nil, fmt.Errorf("endpoints[%d] %q: %w", i, e, err)
		}
		urls[i] = u
	}
	// TCP keepalive finds a member that vanished under a watch, which otherwise waits
	// for events forever: about 5 s idle, then 3 probes 2 s apart.
	d := &net.Dialer{Timeout: dialTimeout, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3}}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2,
		IdleConnTimeout: time.Minute, ResponseHeaderTimeout: dialTimeout, ForceAttemptHTTP2: false}
	ctx, cancel := context.WithCancel(context.Background())
	return &client{endpoints: urls, hc: &http.Client{Transport: tr}, base: ctx, stop: cancel,
		callTimeout: dialTimeout, probeEvery: defaultProbeEvery}, nil
}

// endpointURL accepts what etcdctl does: host:port, or an http or https URL.
func endpointURL(e string) (string, error) {
	if !strings.Contains(e, "://") {
		if _, _, err := net.SplitHostPort(e); err != nil {
			return "", fmt.Errorf("want host:port or http://host:port: %w", err)
		}
		return "http://" + e, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", errors.New("want host:port, http://host:port or https://host:port")
	}
	return u.Scheme + "://" + u.Host, nil
}

func (c *client) close() {
	c.stop()
	c.hc.CloseIdleConnections()
}

// header is a response's ResponseHeader; proto3 JSON writes int64 as a string.
type header struct {
	Revision int64 `json:"revision,string"`
}

type keyValue struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value"`
	ModRevision int64  `json:"mod_revision,string"`
}

type event struct {
	Type string   `json:"type"` // "DELETE", or absent for a put
	KV   keyValue `json:"kv"`
}

// gatewayError is how the gateway reports a failed call: {"error": "...", "code": N,
// "message": "..."} for a unary one before etcd 3.6, {"code": N, "message": "..."} from
// 3.6 on, {"error": {"message": ...}} inside a stream.
type gatewayError struct {
	Error   json.RawMessage `json:"error"`
	Code    int             `json:"code"`
	Message string          `json:"message"`
}

func (g *gatewayError) err() error {
	if len(g.Error) == 0 || string(g.Error) == "null" {
		if g.Code != 0 && g.Message != "" {
			return fmt.Errorf("%s (code %d)", g.Message, g.Code)
		}
		return nil
	}
	if g.Message != "" {
		return errors.New(g.Message)
	}
	var inner struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(g.Error, &inner) == nil && inner.Message != "" {
		return errors.New(inner.Message)
	}
	var s string
	if json.Unmarshal(g.Error, &s) == nil {
		return errors.New(s)
	}
	return errors.New(string(g.Error))
}

// prefixEnd is the range_end that makes key a prefix: key with its last byte that is
// not 0xff incremented, as clientv3.GetPrefixRangeEnd does.
func prefixEnd(key string) []byte {
	end := []byte(key)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // every key from key on
}

// rangePrefix reads every key under prefix.
func (c *client) rangePrefix(ctx context.Context, prefix string) (int64, []keyValue, error) {
	var out struct {
		Header header     `json:"header"`
		KVs    []keyValue `json:"kvs"`
	}
	in := map[string]any{"key": []byte(prefix), "range_end": prefixEnd(prefix)}
	if err := c.call(ctx, "/v3/kv/range", in, &out); err != nil {
		return 0, nil, err
	}
	return out.Header.Revision, out.KVs, nil
}

// putIfUnchanged writes values (full keys) in one transaction that succeeds only if each
// key's mod revision is the one given (0: absent).
func (c *client) putIfUnchanged(ctx context.Context, keys []string, values [][]byte, modRevs []int64) (bool, error) {
	type cmp struct {
		Target      string `json:"target"`
		Result      string `json:"result"`
		Key         []byte `json:"key"`
		ModRevision int64  `json:"mod_revision,string"`
	}
	type put struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	}
	type op struct {
		Put put `json:"request_put"`
	}
	var in struct {
		Compare []cmp `json:"compare"`
		Success []op  `json:"success"`
	}
	for i, k := range keys {
		in.Compare = append(in.Compare, cmp{Target: "MOD", Result: "EQUAL", Key: []byte(k), ModRevision: modRevs[i]})
		in.Success = append(in.Success, op{Put: put{Key: []byte(k), Value: values[i]}})
	}
	var out struct {
		Succeeded bool `json:"succeeded"`
	}
	if err := c.call(ctx, "/v3/kv/txn", in, &out); err != nil {
		return false, err
	}
	return out.Succeeded, nil
}

// watchResult is one message of a watch stream.
type watchResult struct {
	Header          header  `json:"header"`
	Canceled        bool    `json:"canceled"`
	CancelReason    string  `json:"cancel_reason"`
	CompactRevision int64   `json:"compact_revision,string"`
	Events          []event `json:"events"`
}

// errCompacted is returned (wrapped) by watch when its start revision is gone.
var errCompacted = errors.New("compacted")

// watch follows every key under prefix from revision from, calling fn with each batch
// of events, until ctx is done or the stream ends. It needs the member to have
// a leader (as clientv3.WithRequireLeader): a member cut off from its cluster ends the
// watch instead of going quiet.
func (c *client) watch(ctx context.Context, prefix string, from int64, fn func(rev int64, evs []event)) error {
	body, err := json.Marshal(map[string]any{"create_request": map[string]any{
		"key": []byte(prefix), "range_end": prefixEnd(prefix), "start_revision": fmt.Sprint(from)}})
	if err != nil {
		return err
	}
	ctx, cancel := c.context(ctx)
	defer cancel()
	resp, err := c.post(ctx, "/v3/watch", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("/v3/watch on %s: HTTP %d: %.200s (is etcd's gRPC gateway on, --enable-grpc-gateway?)",
			resp.Request.URL.Host, resp.StatusCode, b)
	}
	// TCP keepalive finds a member that vanished, not one that froze or a proxy that
	// keeps the connection up: ask the member something cheap now and then, and end the
	// watch when it does not answer.
	probeErr := make(chan error, 1)
	go c.probe(ctx, cancel, prefix, probeErr)
	// Each message may take maxReply bytes from the stream (plus what the decoder read
	// ahead of the one before): an answer without end cannot grow the heap without end.
	lr := &io.LimitedReader{R: resp.Body, N: maxReply}
	dec := json.NewDecoder(lr)
	for {
		var msg struct {
			gatewayError
			Result *watchResult `json:"result"`
		}
		err := dec.Decode(&msg)
		if err != nil && lr.N <= 0 {
			return fmt.Errorf("watch stream: a message over %d bytes", maxReply)
		}
		lr.N = maxReply
		if err != nil {
			select {
			case perr := <-probeErr:
				return fmt.Errorf("the watched member stopped answering: %w", perr)
			default:
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the watch ended")
			}
			return fmt.Errorf("watch stream: %w", err)
		}
		if err := msg.err(); err != nil {
			return err
		}
		r := msg.Result
		switch {
		case r == nil:
			return errors.New("watch stream: a message with neither result nor error")
		case r.CompactRevision != 0:
			return fmt.Errorf("revision %d was %w (at %d); reading everything again", from, errCompacted, r.CompactRevision)
		case r.Canceled:
			return fmt.Errorf("the watch was canceled: %s", r.CancelReason)
		case len(r.Events) > 0:
			fn(r.Header.Revision, r.Events)
		}
	}
}

// defaultProbeEvery is how often a watch's member is asked a cheap question.
const defaultProbeEvery = 10 * time.Second

// probe ends a watch (cancel) when a keys-only read of one key under prefix fails, and
// says why on failed.
func (c *client) probe(ctx context.Context, cancel context.CancelFunc, prefix string, failed chan<- error) {
	t := time.NewTicker(c.probeEvery)
	defer t.Stop()
	var out struct{}
	in := map[string]any{"key": []byte(prefix), "range_end": prefixEnd(prefix), "limit": "1", "keys_only": true}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, c.callTimeout)
		err := c.call(pctx, "/v3/kv/range", in, &out)
		pcancel()
		if err != nil && ctx.Err() == nil {
			failed <- err
			cancel()
			return
		}
	}
}

// call makes one unary call and decodes its answer into out.
func (c *client) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := c.context(ctx)
	defer cancel()
	resp, err := c.post(ctx, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("%s: reading the answer: %w", path, err)
	}
	if len(b) > maxReply {
		return fmt.Errorf("%s: the answer is over %d bytes", path, maxReply)
	}
	if resp.StatusCode != http.StatusOK {
		var ge gatewayError
		if json.Unmarshal(b, &ge) == nil {
			if err := ge.err(); err != nil {
				return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
			}
		}
		return fmt.Errorf("%s: HTTP %d: %.200s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// context joins ctx with the client's own, which close cancels.
func (c *client) context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// post sends body to path on the current endpoint, and on to the next ones while an
// endpoint cannot be reached, does not answer within its share of ctx's deadline, or
// answers 5xx (a member without a leader says 503: every call requires one, as
// clientv3.WithRequireLeader does). An endpoint that failed is not the current one any
// more, so the next call starts elsewhere. A 5xx answer of the last endpoint tried is
// returned for the caller to report.
func (c *client) post(ctx context.Context, path string, body []byte) (*http.Response, error) {
	c.mu.Lock()
	first := c.cur
	c.mu.Unlock()
	var errs []string
	for i := range c.endpoints {
		n := (first + i) % len(c.endpoints)
		actx, acancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok && i < len(c.endpoints)-1 {
			// A hung endpoint must not use up the whole deadline of the call.
			actx, acancel = context.WithTimeout(ctx, time.Until(d)/time.Duration(len(c.endpoints)-i))
		}
		req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoints[n]+path, bytes.NewReader(body))
		if err != nil {
			acancel()
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Grpc-Metadata-Hasleader", "true")
		resp, err := c.hc.Do(req)
		if err == nil && (resp.StatusCode < 500 || i == len(c.endpoints)-1) {
			c.mu.Lock()
			c.cur = n
			c.mu.Unlock()
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: acancel}
			return resp, nil
		}
		if err == nil {
			err = fmt.Errorf("%s%s: HTTP %d", c.endpoints[n], path, resp.StatusCode)
			resp.Body.Close()
		}
		acancel()
		errs = append(errs, err.Error())
		c.mu.Lock()
		if c.cur == n {
			c.cur = (n + 1) % len(c.endpoints)
		}
		c.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

// cancelBody releases an attempt's context once its answer is read and closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
