package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/netpoll"
)

// Defaults for zero config fields (config/types.go documents the same values).
const (
	DefaultTimeout = 10 * time.Second
	// DefaultConnectTimeout outlasts two SYN retransmits (Linux sends them 1 s and 3 s
	// after the first SYN): a backend whose accept queue is full drops SYNs, and a 1 s
	// timeout gave up at the very moment the first retransmit could have got through.
	DefaultConnectTimeout     = 3500 * time.Millisecond
	DefaultMaxConnsPerHost    = 1024
	DefaultIdleConnTimeout    = 90 * time.Second
	DefaultMaxResponseBytes   = 4 << 20
	DefaultMaxEjectionPercent = 50

	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = 1 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3

	DefaultConsecutiveFailures = 5
	DefaultEjectFor            = 30 * time.Second
)

// Options are the parts of a Cluster that come from the gateway rather than the config.
type Options struct {
	// Resolve maps a configured host that is not a plain host:port (those starting with
	// '@', e.g. "@demo" for the in-process demo backend) to the address to dial. It is
	// called once per such host, from New. Nil: such hosts are an error.
	Resolve func(host string) (string, error)
	// Logger receives health and ejection transitions. Nil: slog.Default().
	Logger *slog.Logger
	// Metrics is the set the cluster's series are registered in (GetOrCreate, so an old
	// and a new Cluster of the same name share series across a reload). Nil: a private
	// set nobody exports.
	Metrics *metrics.Set
	// MaxResponseBytes bounds a Call's response body; over it the call fails 502.
	// 0: DefaultMaxResponseBytes. Forward streams and has no bound.
	MaxResponseBytes int64
	// MaxEjectionPercent bounds the hosts ejected at once by outlier detection, as a
	// percentage of the cluster's hosts; at least one host may always be ejected.
	// 0: DefaultMaxEjectionPercent.
	MaxEjectionPercent int
	// Engine, when set, is the reactor CallAsync sends API calls through (async.go): no
	// goroutine waits for a backend. Nil: CallAsync is Call on the caller's goroutine.
	Engine netpoll.Engine
}

// Cluster is a set of interchangeable hosts. All methods are safe for concurrent use.
type Cluster struct {
	name          string
	cfg           config.Cluster // with defaults applied
	pathPrefix    string         // without a trailing '/'
	timeout       time.Duration
	hosts         []*host
	leastRequests bool
	rr            atomic.Uint64

	transport *http.Transport // health probes only
	eng       netpoll.Engine  // CallAsync's reactor; nil: CallAsync is Call
	deadlines deadlines       // the asynchronous calls' deadlines, under one timer
	maxResp   int64

	maxInFlight int64 // 0: no cap
	inFlight    atomic.Int64

	// Outlier ejection; consecutiveFailures == 0 disables it.
	consecutiveFailures int64
	ejectFor            time.Duration
	maxEjected          int64
	ejectedCount        atomic.Int64

	log *slog.Logger
	m   clusterMetrics

	mu      sync.Mutex // guards started, cancel and setting closed
	started bool
	closed  atomic.Bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New builds a cluster from its config. cfg is copied; the cluster does not start health
// checks until Start.
func New(cfg *config.Cluster, opts Options) (*Cluster, error) {
	if cfg == nil {
		return nil, fmt.Errorf("upstream: nil cluster config")
	}
	c := &Cluster{name: cfg.Name, cfg: *cfg, log: opts.Logger, eng: opts.Engine}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("cluster", cfg.Name)
	if len(cfg.Hosts) == 0 {
		return nil, fmt.Errorf("cluster %q: hosts: at least one host is required", cfg.Name)
	}
	switch cfg.Policy {
	case "", PolicyRoundRobin:
	case PolicyLeastRequests:
		c.leastRequests = true
	default:
		return nil, fmt.Errorf("cluster %q: policy: %q is not %s or %s", cfg.Name, cfg.Policy, PolicyRoundRobin, PolicyLeastRequests)
	}
	if p := cfg.PathPrefix; p != "" && !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("cluster %q: path_prefix: %q must start with '/'", cfg.Name, p)
	}
	c.pathPrefix = strings.TrimRight(cfg.PathPrefix, "/")
	c.timeout = orDuration(cfg.Timeout.D(), DefaultTimeout)
	c.maxResp = opts.MaxResponseBytes
	if c.maxResp <= 0 {
		c.maxResp = DefaultMaxResponseBytes
	}
	if cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("cluster %q: max_in_flight: %d is negative", cfg.Name, cfg.MaxInFlight)
	}
	c.maxInFlight = int64(cfg.MaxInFlight)

	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	c.m = newClusterMetrics(set, cfg.Name)

	seen := make(map[string]bool, len(cfg.Hosts))
	for i, name := range cfg.Hosts {
		addr, err := resolveHost(name, opts.Resolve)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: hosts[%d]: %w", cfg.Name, i, err)
		}
		if seen[name] {
			return nil, fmt.Errorf("cluster %q: hosts[%d]: %q is listed twice", cfg.Name, i, name)
		}
		seen[name] = true
		h := &host{name: name, addr: addr, base: "http://" + addr, m: newHostMetrics(set, cfg.Name, name),
			pool: newH1Pool(addr, orDuration(cfg.ConnectTimeout.D(), DefaultConnectTimeout),
				orInt(cfg.MaxConnsPerHost, DefaultMaxConnsPerHost), maxIdlePerHost(cfg),
				orDuration(cfg.IdleConnTimeout.D(), DefaultIdleConnTimeout))}
		h.pool.stale = c.m.idleRetries
		if c.eng != nil {
			h.async = newAsyncPool(c.eng, addr, orDuration(cfg.ConnectTimeout.D(), DefaultConnectTimeout),
				orInt(cfg.MaxConnsPerHost, DefaultMaxConnsPerHost), maxIdlePerHost(cfg),
				orDuration(cfg.IdleConnTimeout.D(), DefaultIdleConnTimeout))
		}
		h.healthy.Store(true)
		c.hosts = append(c.hosts, h)
	}

	if o := cfg.Outlier; o != nil {
		c.consecutiveFailures = int64(orInt(o.ConsecutiveFailures, DefaultConsecutiveFailures))
		c.ejectFor = orDuration(o.EjectFor.D(), DefaultEjectFor)
		pct := opts.MaxEjectionPercent
		if pct <= 0 {
			pct = DefaultMaxEjectionPercent
		}
		c.maxEjected = max(1, int64(len(c.hosts)*pct/100))
	}
	if hc := cfg.HealthCheck; hc != nil && !strings.HasPrefix(hc.Path, "/") {
		return nil, fmt.Errorf("cluster %q: health_check.path: %q must start with '/'", cfg.Name, hc.Path)
	}

	c.transport = newTransport(cfg)
	return c, nil
}

func resolveHost(name string, resolve func(string) (string, error)) (string, error) {
	if strings.HasPrefix(name, "@") {
		if resolve == nil {
			return "", fmt.Errorf("%q: special host and no resolver", name)
		}
		addr, err := resolve(name)
		if err != nil {
			return "", fmt.Errorf("%q: %w", name, err)
		}
		name = addr
	}
	if _, _, err := net.SplitHostPort(name); err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", name, err)
	}
	return name, nil
}

// newTransport is the health probes' connection pool (calls and forwarded requests use
// each host's h1Pool). Its choices, and why:
//   - no proxy from the environment: a gateway must not detour through HTTP_PROXY;
//   - DisableCompression: gzip bodies pass through untouched (mmtp.md GZIP flag);
//   - HTTP/1.1 only (ForceAttemptHTTP2 false, no TLS config);
//   - no ResponseHeaderTimeout: the timeout is per request (a route may override the
//     cluster's), so each call carries its own context deadline instead.
func newTransport(cfg *config.Cluster) *http.Transport {
	dialer := &net.Dialer{
		Timeout:   orDuration(cfg.ConnectTimeout.D(), DefaultConnectTimeout),
		KeepAlive: 30 * time.Second,
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      false,
		DisableCompression:     true,
		MaxConnsPerHost:        orInt(cfg.MaxConnsPerHost, DefaultMaxConnsPerHost),
		MaxIdleConnsPerHost:    maxIdlePerHost(cfg),
		MaxIdleConns:           0, // per-host bound only
		IdleConnTimeout:        orDuration(cfg.IdleConnTimeout.D(), DefaultIdleConnTimeout),
		MaxResponseHeaderBytes: 64 << 10,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
	}
}

// Name returns the cluster's configured name.
func (c *Cluster) Name() string { return c.name }

// Config returns the cluster's config with defaults applied.
func (c *Cluster) Config() config.Cluster { return c.cfg }

// Timeout returns the cluster's default request timeout.
func (c *Cluster) Timeout() time.Duration { return c.timeout }

// InFlight returns the requests currently in flight to this cluster.
func (c *Cluster) InFlight() int64 { return c.inFlight.Load() }

// Hosts returns a snapshot of every host, in configured order.
func (c *Cluster) Hosts() []HostStatus {
	out := make([]HostStatus, len(c.hosts))
	for i, h := range c.hosts {
		out[i] = h.status()
	}
	return out
}

// Available reports whether at least one host is healthy and not ejected.
func (c *Cluster) Available() bool {
	for _, h := range c.hosts {
		if h.available() {
			return true
		}
	}
	return false
}

// Start begins active health checks (when configured) until ctx ends or Close. Calling
// it again, or after Close, does nothing.
func (c *Cluster) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed.Load() {
		return
	}
	c.started = true
	if c.cfg.HealthCheck == nil {
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	for _, h := range c.hosts {
		c.wg.Add(1)
		go c.healthLoop(ctx, h)
	}
}

// Close stops health checks and ejection timers and closes idle connections. Requests in
// flight finish normally and their connections are closed as they end; new calls after
// Close still work (the gateway closes a cluster only once no new request can reach it).
// Safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	for _, h := range c.hosts {
		h.mu.Lock()
		if h.ejectTimer != nil {
			h.ejectTimer.Stop()
			h.ejectTimer = nil
		}
		h.ejected.Store(false)
		h.mu.Unlock()
	}
	c.transport.CloseIdleConnections()
	for _, h := range c.hosts {
		h.pool.close()
		if h.async != nil {
			h.async.close()
		}
	}
	return nil
}

func (c *Cluster) isClosed() bool { return c.closed.Load() }

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// maxIdlePerHost is how many of a host's connections may wait idle: by default as many as
// it may have (they go after idle_conn_timeout). A lower cap closes the connections
// over it as their answers come, and the next burst dials them again: past capacity,
// where the calls in flight swing with the admission limit, a cap of 256 made the
// gateway pay a connect for one call in twenty (issue 19).
func maxIdlePerHost(cfg *config.Cluster) int {
	return orInt(cfg.MaxIdlePerHost, orInt(cfg.MaxConnsPerHost, DefaultMaxConnsPerHost))
}
