// Package gateway is the server: listeners and their sessions (MMTP, HTTP/1.1) on the
// reactor, the request path (filters, router, upstream with fallback), the admin API and
// the process lifecycle (start, reload, drain).
//
// A request travels down and back in one straight line: a session decodes it into a
// codec.Request, Gateway.handle runs the filters' receive phase, routes it, calls the
// upstream (walking the fallback order when a cluster cannot serve), runs the send phase,
// and the session encodes the response.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/panjf2000/ants/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/accesslog"
	"github.com/mgw-project/mgw/filters/builtin"
	"github.com/mgw-project/mgw/fleet/etcdsource"
	"github.com/mgw-project/mgw/fleet/redisfleet"
	"github.com/mgw-project/mgw/gateway/demo"
	"github.com/mgw-project/mgw/gateway/route"
	"github.com/mgw-project/mgw/netpoll"
)

// Options are what the gateway takes from its caller rather than its config.
type Options struct {
	// Logger receives the gateway's logs; nil builds one from cfg.Log on stderr.
	Logger *slog.Logger
	// Getenv resolves apps' secret_env; nil means os.Getenv.
	Getenv func(string) string
	// AccessLog receives the access log's JSON lines; nil means stdout.
	AccessLog io.Writer
	// Filters is the registry the config's filter names are looked up in; nil means the
	// built-in filters (builtin.NewRegistry). A program embedding the gateway registers
	// its own filters there.
	Filters *filters.Registry
	// Inherit, when set, makes this gateway the new process of a hot upgrade: it serves
	// the inherited listening sockets and takes over the old process's connections
	// (InheritFromEnv).
	Inherit *Inherit
}

// Gateway is one running gateway. Build it with New, then Start; Drain or Close to stop.
type Gateway struct {
	opts  Options
	log   *slog.Logger
	set   *metrics.Set
	m     *gwMetrics
	start time.Time

	engine   netpoll.Engine
	router   *route.Router     // serialises changes to the table; it lives in snap
	filters  *filters.Registry // one for the process, so rate-limit and nonce stores survive reloads
	access   *accesslog.Writer // access lines, written off the request path
	accessLg *slog.Logger
	reqPool  *ants.Pool
	adm      *admission               // built in Start, with the request pool
	snap     atomic.Pointer[snapshot] // everything a request consults; see snapshot
	push     *pushHub                 // device push logs (push.go); push settings need a restart

	mu       sync.Mutex     // guards cfg, listeners, servers during start, reload and stop
	cfg      *config.Config // in force: base with the fleet overlay over it
	base     *config.Config // the file's (or the caller's) config
	overlay  *config.Overlay
	etcd     atomic.Pointer[etcdsource.Source] // nil without fleet.etcd; read under the router's lock
	etcdStop func()
	// rdb is fleet.redis's client (nil without it), shared by push and the filters'
	// fleetFilters; fleet settings need a restart.
	rdb          *redis.Client
	fleetFilters *filters.Fleet
	// inline: API calls and proxied requests with whole bodies run their receive phase
	// on the reactor worker (serveAdmitted); false when a filter may wait on the network (a
	// fleet's Redis) or is not built in.
	inline bool

	listeners  []*listener
	admin      *http.Server
	adminLn    net.Listener
	adminAddr  net.Addr
	health     *http.Server
	healthLn   net.Listener
	healthAddr net.Addr
	// adminPolicy is built from the config in New (so --check resolves the tokens) and
	// handed to the guard when the admin listener starts; Reload swaps the guard's copy.
	adminPolicy *adminPolicy
	adminGuard  *adminGuard
	demo        *http.Server
	demoAddr    string

	inFlight atomic.Int64 // requests between decode and response, all listeners
	requests atomic.Uint64
	draining atomic.Bool
	// cutting: the drain's deadline passed; requests still in flight lose their backend
	// connections and are answered 503 (fallback), not 502 as for a backend's failure.
	cutting atomic.Bool
	ready   atomic.Bool   // every listener bound (readyz)
	idle    chan struct{} // signalled when inFlight drops to 0 while draining

	// Hot upgrade (upgrade.go).
	upgrading    atomic.Bool  // a handover is under way, or committed
	inherited    atomic.Int64 // connections taken over from the old process
	upgraded     chan struct{}
	upgradedOnce sync.Once

	loopStop chan struct{} // closed by Close: ends the max-age sweep
}

// New validates cfg and builds everything that does not bind a socket. Errors name the
// config field at fault.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err // before the logger and limits below are built from cfg
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	g := &Gateway{opts: opts, cfg: cfg, base: cfg, start: time.Now(), set: metrics.NewSet(), idle: make(chan struct{}, 1),
		upgraded: make(chan struct{}), loopStop: make(chan struct{})}
	g.log = opts.Logger
	if g.log == nil {
		g.log = NewLogger(cfg.Log, os.Stderr)
	}
	if lim, ok := cfg.Runtime.MemoryLimit(); ok {
		debug.SetMemoryLimit(lim)
	}
	g.m = newGWMetrics(g.set)
	if r := cfg.Fleet.Redis; r != nil {
		g.rdb = redisfleet.NewClient(*r)
		g.fleetFilters = &filters.Fleet{RateLimit: redisfleet.NewRateLimit(g.rdb, r.Prefix), Nonces: redisfleet.NewNonces(g.rdb, r.Prefix)}
	}
	g.push = newPushHub(cfg.Push, cfg.Fleet.Redis, g.rdb, g.set, g.log)
	g.filters = opts.Filters
	if g.filters == nil {
		g.filters = builtin.NewRegistry()
	}
	g.inline = opts.Filters == nil && g.rdb == nil
	out := opts.AccessLog
	if out == nil {
		out = os.Stdout
	}
	g.access = accesslog.NewWriter(out, 0, g.set)
	g.accessLg = slog.New(slog.NewJSONHandler(g.access, nil))
	g.router = route.New(route.RouterOptions{Logger: g.log, Metrics: g.set, Holder: snapHolder{g}})
	// The demo backend's address is known only once it listens; the config names it @demo
	// and the clusters resolve it at build time, so the demo starts first (in Start) and
	// the snapshot that serves is built there. Build one now all the same, so that --check
	// runs exactly what Start runs.
	s, err := g.buildSnapshot(cfg, "127.0.0.1:1")
	if err != nil {
		return nil, err
	}
	s.close() // built to validate only
	if cfg.Admin.Listen != "" {
		p, err := newAdminPolicy(&cfg.Admin, opts.Getenv)
		if err != nil {
			return nil, err
		}
		g.adminPolicy = p
	}
	return g, nil
}

// Start binds the demo backend, the admin listener and every listener, begins serving,
// and (with fleet.etcd) follows the fleet's config overlay.
func (g *Gateway) Start() error {
	if err := g.startLocal(); err != nil {
		return err
	}
	if err := g.startFleetConfig(); err != nil {
		g.Close()
		return err
	}
	g.ready.Store(true)
	return nil
}

func (g *Gateway) startLocal() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	cfg := g.cfg
	if cfg.Demo.Enabled {
		if err := g.startDemo(cfg.Demo.Listen); err != nil {
			return err
		}
	}
	// The engine comes before the first snapshot: the clusters send API calls through
	// it (upstream.Options.Engine). After SetMemoryLimit (New): the budgets' defaults
	// derive from the limit.
	workers := cfg.Runtime.Workers
	queuedBudget, pendingBudget := cfg.Runtime.Budgets()
	var err error
	g.engine, err = netpoll.New(netpoll.Config{Kind: cfg.Engine, Pollers: cfg.Runtime.Pollers,
		Workers: workers, MaxConns: cfg.Runtime.MaxConns, MaxPending: maxPending(cfg),
		QueuedBudget: queuedBudget, PendingBudget: pendingBudget})
	if err != nil {
		return fmt.Errorf("engine %q: %w", cfg.Engine, err)
	}
	if err := g.router.Apply(func(*route.Table) (*route.Table, error) {
		s, err := g.buildSnapshot(cfg, g.demoAddr)
		if err != nil {
			return nil, err
		}
		g.snap.Store(s)
		return s.table, nil
	}); err != nil {
		g.engine.Close()
		g.engine = nil
		return err
	}
	s := g.snap.Load()
	g.clusterGauges(nil, s.dispatch)
	s.start()

	g.reqPool, err = ants.NewPool(requestPoolSize(workers), ants.WithNonblocking(true),
		ants.WithExpiryDuration(requestWorkerExpiry), ants.WithLogger(quietLogger{}))
	if err != nil {
		return fmt.Errorf("request pool: %w", err)
	}
	g.adm = newAdmission(cfg.Admission, g.reqPool.Cap(), g.m.adm)
	g.m.registerAdmission(g.adm)
	g.m.registerEngine(g)
	g.push.start()
	for i := range cfg.Listeners {
		l, err := g.listen(&cfg.Listeners[i])
		if err != nil {
			g.closeLocked()
			return err
		}
		g.listeners = append(g.listeners, l)
	}
	if cfg.Admin.Listen != "" {
		if err := g.startAdmin(&cfg.Admin); err != nil {
			g.closeLocked()
			return err
		}
	}
	if cfg.Health.Listen != "" {
		if err := g.startHealth(cfg.Health.Listen); err != nil {
			g.closeLocked()
			return err
		}
	}
	g.ready.Store(true)
	g.startAgeLoop()
	if in := g.opts.Inherit; in != nil {
		// Each listener serves a duplicate; one the config no longer has must not stay
		// open here, where its backlog would fill with connections nobody accepts.
		for _, fd := range in.FDs {
			unix.Close(fd)
		}
		go g.adoptFromParent(in)
	}
	if cfg.Runtime.Gops {
		if err := startGops(); err != nil {
			g.log.Warn("gops agent did not start", "err", err)
		}
	}
	return nil
}

// requestWorkerExpiry is how long an idle request worker lives. Reusing a worker keeps
// its grown stack (a new goroutine per request copied its stack twice on the way to the
// backend: 9% of the CPU of the API path); letting it idle long keeps the goroutines of
// a surge. Under an overload of one core, a task outlives its admission slot by the
// write of its answer and then waits its turn to return to the pool, so tasks admitted
// meanwhile start new workers; at one second of expiry hundreds of them idled beside
// the 150 requests in flight (issue 19). At 50 ms they are gone almost at once, and a
// busy pool still reuses its workers.
const requestWorkerExpiry = 50 * time.Millisecond

// requestPoolSize bounds the goroutines that run request tasks: proxied requests (which
// block on backends while their bodies stream) and API calls whose filters wait on a
// fleet's Redis (other API calls run on the reactor, callAPI). It is a bound on requests
// in flight, not a CPU count; above it a request is answered 503 unavailable rather than
// queued. It is also the adaptive admission limit's default ceiling (admission.go).
func requestPoolSize(workers int) int {
	if workers > 0 {
		return workers * 4
	}
	return 10000
}

// maxPending is the most an incomplete frame may hold: the largest frame any listener
// accepts, plus the head, so the reactor never closes what a codec would still take.
func maxPending(cfg *config.Config) int {
	m := 0
	for _, l := range cfg.Listeners {
		m = max(m, l.MaxHeaderBytes+l.MaxBodyBytes+64)
	}
	return m
}

func (g *Gateway) startDemo(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo.listen %q: %w", addr, err)
	}
	g.demo = &http.Server{Handler: demo.NewNamed("demo"), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	g.demoAddr = ln.Addr().String()
	go g.demo.Serve(ln)
	g.log.Info("demo backend listening", "addr", g.demoAddr)
	return nil
}

// begin and end bracket a request between decode and response, for the drain.
func (g *Gateway) begin() {
	g.inFlight.Add(1)
	g.requests.Add(1)
}

func (g *Gateway) end() {
	if g.inFlight.Add(-1) == 0 && g.draining.Load() {
		select {
		case g.idle <- struct{}{}:
		default:
		}
	}
}

// requestBound is how long a request accepted now may take at most: the longest cluster
// or route timeout, once per cluster it may fall back to, plus a second.
func (g *Gateway) requestBound() time.Duration {
	s := g.snap.Load()
	m := s.maxTimeout()
	for _, rt := range s.table.Routes() {
		m = max(m, rt.Config().Timeout.D())
	}
	return time.Duration(max(len(s.clusters), 1))*m + time.Second
}

// Addr returns the bound address of the named listener, or nil.
func (g *Gateway) Addr(name string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.listeners {
		if l.cfg.Name == name {
			return l.addr
		}
	}
	return nil
}

// AdminAddr returns the admin listener's bound address, or nil when it is off.
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.adminAddr
}

// HealthAddr returns the health listener's bound address, or nil when it is off.
func (g *Gateway) HealthAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.healthAddr
}

// Config returns the configuration in force.
func (g *Gateway) Config() *config.Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// Reload applies a new configuration without dropping a request: routes, switches,
// clusters, apps and filters are swapped atomically (requests in flight finish on what
// they started with). Listeners, engine and admin settings need a restart; a change to
// them is reported and otherwise ignored.
func (g *Gateway) Reload(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.reloadLocked(cfg.WithOverlay(g.overlay), "configuration"); err != nil {
		return err
	}
	if !reflect.DeepEqual(g.base.Fleet, cfg.Fleet) {
		g.log.Warn("reload: fleet changes need a restart; kept the running fleet connections")
	}
	g.base = cfg
	return nil
}

// reloadLocked makes cfg (the file's config with the fleet overlay over it) the one in
// force; what names the change in the log.
func (g *Gateway) reloadLocked(cfg *config.Config, what string) error {
	// buildSnapshot validates too; this first pass keeps the admin policy below from
	// reading a config that is invalid elsewhere.
	if err := cfg.Validate(); err != nil {
		return err
	}
	// Tokens and host names are re-read, so a token is rotated by a reload: add the new
	// one, move the callers, remove the old one.
	var pol *adminPolicy
	if g.adminGuard != nil && cfg.Admin.Listen != "" {
		var err error
		if pol, err = newAdminPolicy(&cfg.Admin, g.opts.Getenv); err != nil {
			return err
		}
	}
	// Under the router's change lock, so that no admin routing change lands between the
	// build and the publication (it would derive its snapshot from the one replaced).
	var old *snapshot
	if err := g.router.Apply(func(*route.Table) (*route.Table, error) {
		s, err := g.buildSnapshot(cfg, g.demoAddr)
		if err != nil {
			return nil, err
		}
		s.start()
		old = g.snap.Swap(s)
		return s.table, nil
	}); err != nil {
		return err
	}
	g.clusterGauges(old.dispatch, g.snap.Load().dispatch)
	g.filters.Sweep() // free the stores of routes the new config no longer has
	if pol != nil {
		g.adminGuard.policy.Store(pol)
	}
	if changed := frontDoorChanges(g.cfg, cfg); len(changed) > 0 {
		g.log.Warn("reload: changes that need a restart (listeners but their filters, engine, admin, health, log, most of runtime) were not applied; kept the running ones", "changed", changed)
		cfg = keepFrontDoor(g.cfg, cfg)
	}
	g.cfg = cfg
	// Requests in flight may still hold the old clusters; close their pools once the
	// longest of their timeouts has passed.
	time.AfterFunc(old.maxTimeout()+time.Second, old.close)
	g.log.Info(what+" reloaded", "routes", len(cfg.Routes), "clusters", len(cfg.Clusters))
	return nil
}

// Logger is the gateway's logger (its config's log level and format).
func (g *Gateway) Logger() *slog.Logger { return g.log }

// frontDoorChanges names what next changes of what only a restart applies: the engine,
// the admin and health addresses, the listeners (all but their filters, which a snapshot
// rebuilds), the log, and the runtime but drain_timeout, drain_spread and upgrade_binary,
// which are read when used.
func frontDoorChanges(running, next *config.Config) []string {
	var out []string
	diff := func(field string, was, is any) {
		if was != is {
			out = append(out, fmt.Sprintf("%s %v -> %v", field, was, is))
		}
	}
	diff("engine", running.Engine, next.Engine)
	diff("admin.listen", running.Admin.Listen, next.Admin.Listen)
	diff("health", running.Health, next.Health)
	if len(running.Listeners) != len(next.Listeners) {
		diff("listeners", len(running.Listeners), len(next.Listeners))
		return out
	}
	out = append(out, fieldChanges("log", running.Log, next.Log)...)
	out = append(out, fieldChanges("runtime", running.Runtime, next.Runtime, liveRuntime...)...)
	for i := range running.Listeners {
		out = append(out, fieldChanges(fmt.Sprintf("listeners[%d]", i), running.Listeners[i], next.Listeners[i], "filters")...)
	}
	return out
}

// liveRuntime are the runtime fields a reload applies: read where they are used.
var liveRuntime = []string{"drain_timeout", "drain_spread", "upgrade_binary"}

// fieldChanges lists the fields (by their yaml names) of two values of one struct type
// that differ, as "prefix.field was -> is", but those named in skip.
func fieldChanges(prefix string, was, is any, skip ...string) []string {
	var out []string
	a, b := reflect.ValueOf(was), reflect.ValueOf(is)
	for i := 0; i < a.NumField(); i++ {
		name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || slices.Contains(skip, name) {
			continue
		}
		if x, y := a.Field(i).Interface(), b.Field(i).Interface(); !reflect.DeepEqual(x, y) {
			out = append(out, fmt.Sprintf("%s.%s %v -> %v", prefix, name, x, y))
		}
	}
	return out
}

// keepFrontDoor is next with what only a restart applies taken from running, so that the
// config the gateway reports (GET /v1/config) and compares the next reload with is the one
// it runs. A listener added or removed keeps the running list whole.
func keepFrontDoor(running, next *config.Config) *config.Config {
	c := *next
	c.Engine, c.Health, c.Admin.Listen, c.Log = running.Engine, running.Health, running.Admin.Listen, running.Log
	live := next.Runtime
	c.Runtime = running.Runtime
	c.Runtime.DrainTime, c.Runtime.DrainSpread, c.Runtime.UpgradeBinary = live.DrainTime, live.DrainSpread, live.UpgradeBinary
	if len(next.Listeners) != len(running.Listeners) {
		c.Listeners = running.Listeners
		return &c
	}
	c.Listeners = slices.Clone(running.Listeners)
	for i := range c.Listeners {
		c.Listeners[i].Filters = next.Listeners[i].Filters // rebuilt with the snapshot
	}
	return &c
}

// Drain stops accepting, tells MMTP clients to go away, lets requests in flight finish
// until ctx is done, then closes everything. It returns ctx's error when requests were
// still in flight at the deadline.
func (g *Gateway) Drain(ctx context.Context) error {
	g.draining.Store(true)
	g.mu.Lock()
	eng := g.engine
	g.mu.Unlock()
	var told <-chan struct{}
	spread := g.Config().Runtime.DrainSpread.D()
	if eng != nil {
		eng.StopAccepting()
		told = goAwayAll(ctx, eng, spread)
	}
	start, begun := time.Now(), g.requests.Load()
	inFlight := g.inFlight.Load()
	g.log.Info("draining", "in_flight", inFlight, "spread", spread)
	if eng != nil {
		// Requests keep coming on connections not told yet: wait until all were.
		select {
		case <-told:
		case <-ctx.Done():
		}
	}
	var err error
	for g.inFlight.Load() > 0 && err == nil {
		select {
		case <-g.idle:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			err = fmt.Errorf("drain: %d requests still in flight: %w", g.inFlight.Load(), ctx.Err())
		}
	}
	// What the drain had to finish: the requests in flight when it began and those
	// accepted since (behind GOAWAY's last-stream-id, or HTTP requests already read).
	left := g.inFlight.Load()
	owed := inFlight + int64(g.requests.Load()-begun)
	g.log.Info("drain finished", "answered", owed-left, "left_unanswered", left,
		"took", time.Since(start).Round(time.Millisecond), "deadline_hit", err != nil)
	// Responses are written; give the sockets a moment to flush, and the sessions to
	// close their connections themselves (an idle MMTP one lingers after its GOAWAY),
	// before closing what is left. The backend connections idle in the clusters' pools
	// are the engine's too: closed first, so the wait is for clients only. (A closed
	// cluster still serves a late request, on a connection of its own.)
	if err != nil {
		g.cutting.Store(true)
		if eng != nil {
			cut := shutdownAnswer()
			eng.Range(func(c netpoll.Conn) bool {
				if s, ok := c.Context().(*mmtpSession); ok {
					s.cutInFlight(cut)
				}
				return true
			})
		}
	}
	if s := g.snap.Load(); s != nil {
		s.close()
	}
	if eng != nil {
		// Past the deadline, a short while yet: the requests cut just now are answered
		// (mmtp.md: every request accepted is answered before the close).
		wait := time.Second
		if err != nil {
			wait = 200 * time.Millisecond
		}
		deadline := time.Now().Add(wait)
		for st := eng.Stats(); (st.QueuedBytes > 0 || st.Open > 0) && time.Now().Before(deadline); st = eng.Stats() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return errors.Join(err, g.Close())
}

// drainer is a session that can be asked to wind down (MMTP: GOAWAY; HTTP: close after
// the current response).
type drainer interface{ drain() }

// Close stops everything at once.
func (g *Gateway) Close() error {
	// The etcd source first, without the lock: it may be waiting for the lock to apply a
	// change, and stopping it waits for it.
	g.mu.Lock()
	stop := g.etcdStop
	g.etcdStop = nil
	g.mu.Unlock()
	if stop != nil {
		stop()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closeLocked()
}

func (g *Gateway) closeLocked() error {
	var errs []error
	select {
	case <-g.loopStop:
	default:
		close(g.loopStop)
	}
	if g.engine != nil {
		errs = append(errs, g.engine.Close())
	}
	if g.admin != nil {
		errs = append(errs, g.admin.Close())
	}
	if g.health != nil {
		errs = append(errs, g.health.Close())
	}
	if g.demo != nil {
		errs = append(errs, g.demo.Close())
	}
	if s := g.snap.Load(); s != nil {
		s.close()
	}
	if g.reqPool != nil {
		g.reqPool.Release()
	}
	g.push.close()
	if g.rdb != nil {
		errs = append(errs, g.rdb.Close())
		g.rdb = nil
	}
	errs = append(errs, g.access.Close())
	return errors.Join(errs...)
}

// quietLogger keeps ants from printing to stdout; a panic in a request task never reaches
// ants: Gateway.submit recovers, logs and answers it.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
