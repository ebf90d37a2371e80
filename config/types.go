// Package config is mgw's configuration model: one structure for the YAML file, the
// compiled-in default, the admin API and (later) the fleet store. Loading is strict:
// unknown fields are errors and every validation error names the field path and value.
package config

import "time"

// Config is the whole gateway configuration.
type Config struct {
	// Engine is "epoll" (default) or "rwloop".
	Engine    string     `yaml:"engine" json:"engine"`
	Admin     Admin      `yaml:"admin" json:"admin"`
	Health    Health     `yaml:"health" json:"health"`
	Instance  Instance   `yaml:"instance" json:"instance"`
	Log       Log        `yaml:"log" json:"log"`
	Runtime   Runtime    `yaml:"runtime" json:"runtime"`
	Admission Admission  `yaml:"admission" json:"admission"`
	Push      Push       `yaml:"push" json:"push"`
	Demo      Demo       `yaml:"demo" json:"demo"`
	Listeners []Listener `yaml:"listeners" json:"listeners"`
	Apps      []App      `yaml:"apps" json:"apps"`
	Clusters  []Cluster  `yaml:"clusters" json:"clusters"`
	Routes    []Route    `yaml:"routes" json:"routes"`
	Switches  Switches   `yaml:"switches" json:"switches"`
	Fleet     Fleet      `yaml:"fleet" json:"fleet"`
}

// Instance describes this gateway instance, for zone and label switches.
type Instance struct {
	Zone   string            `yaml:"zone" json:"zone"`
	Labels map[string]string `yaml:"labels" json:"labels"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level" json:"level"`   // debug, info (default), warn, error
	Format string `yaml:"format" json:"format"` // text (default) or json
}

// Runtime tunes the process and the reactor.
type Runtime struct {
	GOMEMLIMIT string   `yaml:"gomemlimit" json:"gomemlimit"` // e.g. "2GiB"; "" leaves Go's default
	Pollers    int      `yaml:"pollers" json:"pollers"`       // 0: GOMAXPROCS
	Workers    int      `yaml:"workers" json:"workers"`       // 0: engine default
	MaxConns   int      `yaml:"max_conns" json:"max_conns"`   // across listeners; 0: engine default
	Gops       bool     `yaml:"gops" json:"gops"`             // start the gops agent
	DrainTime  Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// DrainSpread spreads a drain's GOAWAYs (and HTTP closes) over this window, in a
	// random order, so the clients do not all reconnect in the same instant; 0 sends them
	// all at once. It must be shorter than drain_timeout.
	DrainSpread Duration `yaml:"drain_spread" json:"drain_spread,omitempty"`
	// QueuedBudget and PendingBudget bound, across all connections, the answer bytes
	// waiting for slow readers and the bytes of incomplete frames (docs/operations.md,
	// "Memory budgets"). A size like 512MiB; "" takes a quarter of gomemlimit (or of
	// GOMEMLIMIT), else 256MiB; "off" disables.
	QueuedBudget  string `yaml:"queued_budget" json:"queued_budget,omitempty"`
	PendingBudget string `yaml:"pending_budget" json:"pending_budget,omitempty"`
	// UpgradeBinary is the program a hot upgrade (SIGUSR2, POST /v1/upgrade) starts with
	// this process's arguments; "" runs the running binary's path again.
	UpgradeBinary string `yaml:"upgrade_binary" json:"upgrade_binary,omitempty"`
}

// Admission bounds the requests the gateway takes on at once, gateway-wide and per
// connection, and refuses the rest at once with 503 unavailable (docs/operations.md,
// "Overload"). The limit adapts to the latency of admitted requests: it shrinks while a
// window's average stays over twice the lowest seen lately (and over that plus
// QueueTarget), and grows while the limit is what holds requests back and latency is fine.
type Admission struct {
	// Limit fixes the gateway-wide limit on requests in flight; 0 adapts it between
	// MinLimit and MaxLimit.
	Limit int `yaml:"limit" json:"limit"`
	// MinLimit is the adaptive limit's floor; default 128.
	MinLimit int `yaml:"min_limit" json:"min_limit"`
	// MaxLimit is its ceiling; 0 = the request pool's size.
	MaxLimit int `yaml:"max_limit" json:"max_limit"`
	// QueueTarget is the latency over the baseline that counts as a queue at the least
	// (twice the baseline always does), and the average wait of a window's requests, from
	// their bytes seen ready by the reactor to their start, that counts as a standing
	// queue (it sheds, and shrinks a limit that binds); default 2ms.
	QueueTarget Duration `yaml:"queue_target" json:"queue_target"`
	// ShedAfter: while the queue stands (a window's average wait over QueueTarget), an
	// admitted request that waited longer than this is answered 503 unserved; default 1s.
	ShedAfter Duration `yaml:"shed_after" json:"shed_after"`
	// Off turns admission off: only the per-connection max_in_flight and the request pool
	// bound requests (the behaviour before admission existed).
	Off bool `yaml:"off" json:"off"`
}

// Push bounds the per-device push logs (mmtp.md "Push delivery", docs/push.md). Sizes
// are written like runtime.gomemlimit: 64KiB, 64MiB, or a number of bytes.
type Push struct {
	// MaxMessages is how many messages a device's log holds; past it the oldest is
	// evicted and the device's epoch changes. Default 64.
	MaxMessages int `yaml:"max_messages" json:"max_messages"`
	// MaxBytes bounds the body bytes of one device's log, as MaxMessages does its
	// count; a single body over it is refused. Default 64KiB.
	MaxBytes string `yaml:"max_bytes" json:"max_bytes"`
	// Budget bounds the body bytes of all logs together; a publish past it is refused
	// with 503 naming push.budget. Default 64MiB.
	Budget string `yaml:"budget" json:"budget"`
	// DefaultTTL is a message's time to live when its publisher gives none. Default 24h.
	DefaultTTL Duration `yaml:"default_ttl" json:"default_ttl"`
	// MaxTTL bounds the ttl a publisher may ask for. Default 7 days.
	MaxTTL Duration `yaml:"max_ttl" json:"max_ttl"`
}

// Demo runs the demo backend in-process, for the default config.
type Demo struct {
	Enabled bool   `yaml:"enabled" json:"enabled"`
	Listen  string `yaml:"listen" json:"listen"` // "127.0.0.1:0" default
}

// Listener is one front-door socket.
type Listener struct {
	Name          string `yaml:"name" json:"name"`
	Listen        string `yaml:"listen" json:"listen"`
	Protocol      string `yaml:"protocol" json:"protocol"` // mmtp or http1
	ProxyProtocol bool   `yaml:"proxy_protocol" json:"proxy_protocol"`
	ReusePort     bool   `yaml:"reuse_port" json:"reuse_port"`
	MaxConns      int    `yaml:"max_conns" json:"max_conns"`
	// Filters run for every request on this listener, before the route's own. An entry
	// is a name or a name with its options: [{auth: {replay: true}}, accesslog].
	Filters FilterList `yaml:"filters" json:"filters"`
	// RequireHello: an MMTP REQUEST before a successful HELLO is answered 401.
	RequireHello bool `yaml:"require_hello" json:"require_hello"`

	// Limits (mmtp.md "Limits"; for http1, MaxHeaderBytes bounds the request head).
	MaxHeaderBytes   int `yaml:"max_header_bytes" json:"max_header_bytes"`     // default 16 KiB
	MaxBodyBytes     int `yaml:"max_body_bytes" json:"max_body_bytes"`         // default 4 MiB (http1: API calls; a proxied body streams, bounded by its route's)
	MaxHeaderEntries int `yaml:"max_header_entries" json:"max_header_entries"` // default 64
	MaxInFlight      int `yaml:"max_in_flight" json:"max_in_flight"`           // default 64

	// Timeouts.
	IdleTimeout      Duration `yaml:"idle_timeout" json:"idle_timeout"`           // default 300s (http1: keep-alive idle, default 75s)
	FrameTimeout     Duration `yaml:"frame_timeout" json:"frame_timeout"`         // a begun frame/head must complete; default 30s (http1: header read, default 10s)
	HandshakeTimeout Duration `yaml:"handshake_timeout" json:"handshake_timeout"` // first complete frame (and PROXY header); default: MMTP the idle timeout, HTTP 10s
	// WriteStallTimeout closes a connection whose queued answer bytes made no progress for
	// this long (a client that stopped reading); default 30s.
	WriteStallTimeout Duration `yaml:"write_stall_timeout" json:"write_stall_timeout"`
	// BodyTimeout (http1 only) bounds the time from the end of a request head to the end of
	// its body: past it the request is answered 408 and the connection closed; default 60s.
	BodyTimeout Duration `yaml:"body_timeout" json:"body_timeout"`

	// MaxConnectionAge retires a connection this old (give or take 10%, per connection, so
	// a fleet's connections do not all go at once): MMTP GOAWAY `reason: max_age`, HTTP
	// close after the current response. Long connections then rebalance across a fleet.
	// 0 (default) keeps them for good.
	MaxConnectionAge Duration `yaml:"max_connection_age" json:"max_connection_age,omitempty"`
	// MaxConnectionAgeGrace is how long a retired connection may still finish its
	// requests before it is closed; default 30s.
	MaxConnectionAgeGrace Duration `yaml:"max_connection_age_grace" json:"max_connection_age_grace,omitempty"`
	// MaxConnRate caps new connections accepted per second (a fleet-wide reconnect
	// storm): the rest wait in the kernel's backlog, counted; 0 (default) means no cap.
	MaxConnRate int `yaml:"max_conn_rate" json:"max_conn_rate,omitempty"`
	// MaxHelloRate (mmtp only) caps HELLOs handled per second, so a reconnect storm
	// reaches auth (a signature check per HELLO) at a pace it can take: a HELLO over it
	// waits, unread, for its turn, counted; 0 (default) means no cap.
	MaxHelloRate int `yaml:"max_hello_rate" json:"max_hello_rate,omitempty"`
}

// App is a calling app and its credentials.
type App struct {
	ID string `yaml:"id" json:"id"`
	// The secret comes from exactly one of these; it is never logged or shown.
	Secret     string `yaml:"secret" json:"-"`
	SecretEnv  string `yaml:"secret_env" json:"secret_env,omitempty"`
	SecretFile string `yaml:"secret_file" json:"secret_file,omitempty"`
	// APIs, when non-empty, is the allow-list of operation types (exact or `prefix.*`);
	// others are answered 403.
	APIs []string `yaml:"apis" json:"apis,omitempty"`
}

// Cluster is a set of interchangeable upstream hosts.
type Cluster struct {
	Name  string   `yaml:"name" json:"name"`
	Hosts []string `yaml:"hosts" json:"hosts"` // host:port
	// Tags classify the cluster for switches (e.g. "mesh").
	Tags []string `yaml:"tags" json:"tags,omitempty"`
	// PathPrefix is prepended to `/OP` for MMTP/API requests (mmtp.md "Backend mapping").
	PathPrefix string `yaml:"path_prefix" json:"path_prefix,omitempty"`
	Policy     string `yaml:"policy" json:"policy"` // round_robin (default) or least_requests

	Timeout         Duration `yaml:"timeout" json:"timeout"`                       // whole request; default 10s
	ConnectTimeout  Duration `yaml:"connect_timeout" json:"connect_timeout"`       // default 3.5s
	MaxConnsPerHost int      `yaml:"max_conns_per_host" json:"max_conns_per_host"` // default 1024
	MaxIdlePerHost  int      `yaml:"max_idle_per_host" json:"max_idle_per_host"`   // default max_conns_per_host
	IdleConnTimeout Duration `yaml:"idle_conn_timeout" json:"idle_conn_timeout"`   // default 90s
	// MaxInFlight is a per-instance cap on requests in flight to this cluster; 0 = none.
	// Over it requests are answered 503 unavailable.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`

	HealthCheck *HealthCheck `yaml:"health_check" json:"health_check,omitempty"`
	Outlier     *Outlier     `yaml:"outlier" json:"outlier,omitempty"`
}

// HealthCheck is an active HTTP health check.
type HealthCheck struct {
	Path               string   `yaml:"path" json:"path"`
	Interval           Duration `yaml:"interval" json:"interval"`                       // default 5s
	Timeout            Duration `yaml:"timeout" json:"timeout"`                         // default 1s
	HealthyThreshold   int      `yaml:"healthy_threshold" json:"healthy_threshold"`     // default 2
	UnhealthyThreshold int      `yaml:"unhealthy_threshold" json:"unhealthy_threshold"` // default 3
}

// Outlier is passive ejection of a failing host.
type Outlier struct {
	ConsecutiveFailures int      `yaml:"consecutive_failures" json:"consecutive_failures"` // default 5
	EjectFor            Duration `yaml:"eject_for" json:"eject_for"`                       // default 30s
}

// Route matches an operation type (API) or, for plain HTTP, a path prefix.
type Route struct {
	// Exactly one of API and Path. API is exact, `prefix.*`, or `*`.
	API  string `yaml:"api" json:"api,omitempty"`
	Path string `yaml:"path" json:"path,omitempty"`
	// Split maps cluster name to weight.
	Split map[string]int `yaml:"split" json:"split"`
	// Sticky is the cohort key: device (default), user, app, client, none.
	Sticky   string   `yaml:"sticky" json:"sticky"`
	Fallback []string `yaml:"fallback" json:"fallback,omitempty"`
	// Retry allows resending a request that may have reached a backend to a fallback.
	Retry bool `yaml:"retry" json:"retry,omitempty"`
	// Force sends testers' traffic to a named cluster (or away from it) before the split.
	Force []Force `yaml:"force" json:"force,omitempty"`

	// Filters run, after the listener's, for the requests of this route: names or names
	// with options, [auth, {ratelimit: {rate: 2000/s}}]. Each filter decodes and checks
	// its own options (docs/filters.md).
	Filters FilterList `yaml:"filters" json:"filters,omitempty"`
	// Auth, RateLimit and AccessLog are the first format's place for the options of the
	// filter of that name in Filters; still read, but the filters entry is preferred.
	Auth      FilterOptions `yaml:"auth,omitempty" json:"auth,omitempty"`
	RateLimit FilterOptions `yaml:"ratelimit,omitempty" json:"ratelimit,omitempty"`
	AccessLog FilterOptions `yaml:"accesslog,omitempty" json:"accesslog,omitempty"`

	// MaxBodyBytes is the route's own body limit (413 over it, at once when a declared
	// length is over it); 0 = the listener's for API calls, and none for a path route's
	// proxied bodies, which stream through.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// Timeout overrides the cluster's request timeout; 0 = the cluster's.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Force is a tester override, checked before the split.
type Force struct {
	Devices []string `yaml:"devices" json:"devices,omitempty"`
	Users   []string `yaml:"users" json:"users,omitempty"`
	// Header matches a request header value: {name: x-canary, value: "1"}.
	Header *HeaderMatch `yaml:"header" json:"header,omitempty"`
	// Cluster is where matching requests go; with Never they are kept away from it instead.
	Cluster string `yaml:"cluster" json:"cluster"`
	Never   bool   `yaml:"never" json:"never,omitempty"`
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	Name  string `yaml:"name" json:"name"`
	Value string `yaml:"value" json:"value"`
}

// Switches override route splits without editing routes, most specific first.
type Switches struct {
	// MeshOnlyApps: every API of these apps goes only to clusters tagged "mesh".
	MeshOnlyApps []string `yaml:"mesh_only_apps" json:"mesh_only_apps"`
	// Zones maps a zone to {tag: percent}: in that zone, percent of each route's traffic
	// goes to its clusters with that tag.
	Zones map[string]map[string]int `yaml:"zones" json:"zones"`
	// Labels maps "key" or "key=value" of this instance's labels to {tag: percent}.
	Labels map[string]map[string]int `yaml:"labels" json:"labels"`
}

// Duration is a time.Duration that reads and writes as "2s", "150ms".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
