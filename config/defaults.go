package config

import "time"

// Defaults that types.go documents. They are applied to zero values only: a negative value
// is left as written so that Validate reports it rather than silently replacing it.
const (
	DefaultEngine       = "epoll"
	DefaultDemoListen   = "127.0.0.1:0"
	DefaultDrainTimeout = Duration(30 * time.Second)

	DefaultMaxHeaderBytes   = 16 << 10
	DefaultMaxBodyBytes     = 4 << 20
	DefaultMaxHeaderEntries = 64
	DefaultMaxInFlight      = 64

	DefaultAdmissionMinLimit    = 128
	DefaultAdmissionQueueTarget = Duration(2 * time.Millisecond)
	DefaultAdmissionShedAfter   = Duration(time.Second)

	DefaultPushMaxMessages = 64
	DefaultPushMaxBytes    = "64KiB"
	DefaultPushBudget      = "64MiB"
	DefaultPushTTL         = Duration(24 * time.Hour)
	DefaultPushMaxTTL      = Duration(7 * 24 * time.Hour)

	DefaultMMTPIdleTimeout            = Duration(300 * time.Second)
	DefaultMMTPFrameTimeout           = Duration(30 * time.Second)
	DefaultHTTPIdleTimeout            = Duration(75 * time.Second)
	DefaultHTTPHeaderTimeout          = Duration(10 * time.Second)
	DefaultHandshakeTimeout           = Duration(10 * time.Second)
	DefaultWriteStallTimeout          = Duration(30 * time.Second)
	DefaultMaxConnectionAgeGrace      = Duration(30 * time.Second)
	DefaultHTTPBodyTimeout            = Duration(60 * time.Second)
	DefaultClusterTimeout             = Duration(10 * time.Second)
	DefaultConnectTimeout             = Duration(3500 * time.Millisecond) // outlasts two SYN retransmits (1 s, 3 s)
	DefaultMaxConnsPerHost            = 1024
	DefaultIdleConnTimeout            = Duration(90 * time.Second)
	DefaultHealthInterval             = Duration(5 * time.Second)
	DefaultHealthTimeout              = Duration(1 * time.Second)
	DefaultHealthyThreshold           = 2
	DefaultUnhealthyThreshold         = 3
	DefaultConsecutiveFailures        = 5
	DefaultEjectFor                   = Duration(30 * time.Second)
	DefaultSticky                     = "device"
	DefaultPolicy                     = "round_robin"
	DefaultLogLevel, DefaultLogFormat = "info", "text"
)

// ApplyDefaults fills zero fields with their documented defaults. Parse calls it; code
// that builds a Config by hand (tests, the admin API) calls it before Validate. It is
// idempotent. Protocol-dependent listener defaults are applied only for a known protocol.
func (c *Config) ApplyDefaults() {
	setStr(&c.Engine, DefaultEngine)
	setStr(&c.Log.Level, DefaultLogLevel)
	setStr(&c.Log.Format, DefaultLogFormat)
	setDur(&c.Runtime.DrainTime, DefaultDrainTimeout)
	setStr(&c.Demo.Listen, DefaultDemoListen)
	c.Admin.applyDefaults()
	c.Fleet.applyDefaults()
	setInt(&c.Admission.MinLimit, DefaultAdmissionMinLimit)
	setDur(&c.Admission.QueueTarget, DefaultAdmissionQueueTarget)
	setDur(&c.Admission.ShedAfter, DefaultAdmissionShedAfter)
	setInt(&c.Push.MaxMessages, DefaultPushMaxMessages)
	setStr(&c.Push.MaxBytes, DefaultPushMaxBytes)
	setStr(&c.Push.Budget, DefaultPushBudget)
	setDur(&c.Push.DefaultTTL, DefaultPushTTL)
	setDur(&c.Push.MaxTTL, DefaultPushMaxTTL)
	for i := range c.Listeners {
		c.Listeners[i].applyDefaults()
	}
	for i := range c.Clusters {
		c.Clusters[i].applyDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].applyDefaults()
	}
}

func (l *Listener) applyDefaults() {
	setInt(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setInt(&l.MaxBodyBytes, DefaultMaxBodyBytes)
	setInt(&l.MaxHeaderEntries, DefaultMaxHeaderEntries)
	setInt(&l.MaxInFlight, DefaultMaxInFlight)
	setDur(&l.WriteStallTimeout, DefaultWriteStallTimeout)
	if l.MaxConnectionAge > 0 {
		setDur(&l.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace)
	}
	switch l.Protocol {
	case "mmtp":
		setDur(&l.IdleTimeout, DefaultMMTPIdleTimeout)
		setDur(&l.FrameTimeout, DefaultMMTPFrameTimeout)
		// mmtp.md, Limits: "idle time with no complete frame: 300 s, then GOAWAY idle"
		// holds from the connection's start, so a connection that has not spoken yet
		// gets the idle timeout by default, not HTTP's short handshake.
		if l.IdleTimeout > 0 { // a negative one is an error of its own, not of this field
			setDur(&l.HandshakeTimeout, l.IdleTimeout)
		}
	case "http1":
		setDur(&l.IdleTimeout, DefaultHTTPIdleTimeout)
		setDur(&l.FrameTimeout, DefaultHTTPHeaderTimeout)
		setDur(&l.BodyTimeout, DefaultHTTPBodyTimeout)
	}
	setDur(&l.HandshakeTimeout, DefaultHandshakeTimeout)
}

func (cl *Cluster) applyDefaults() {
	setStr(&cl.Policy, DefaultPolicy)
	setDur(&cl.Timeout, DefaultClusterTimeout)
	setDur(&cl.ConnectTimeout, DefaultConnectTimeout)
	setInt(&cl.MaxConnsPerHost, DefaultMaxConnsPerHost)
	setInt(&cl.MaxIdlePerHost, cl.MaxConnsPerHost) // as many as it may have: they go after the idle timeout
	setDur(&cl.IdleConnTimeout, DefaultIdleConnTimeout)
	if h := cl.HealthCheck; h != nil {
		setDur(&h.Interval, DefaultHealthInterval)
		setDur(&h.Timeout, DefaultHealthTimeout)
		setInt(&h.HealthyThreshold, DefaultHealthyThreshold)
		setInt(&h.UnhealthyThreshold, DefaultUnhealthyThreshold)
	}
	if o := cl.Outlier; o != nil {
		setInt(&o.ConsecutiveFailures, DefaultConsecutiveFailures)
		setDur(&o.EjectFor, DefaultEjectFor)
	}
}

// applyDefaults leaves the filters' options (auth, ratelimit, accesslog) as written: each
// filter defaults its own (auth.DefaultSkew, ratelimit's one second of rate and
// DefaultMaxKeys, ...), so a default is defined once, where it is used.
func (r *Route) applyDefaults() {
	setStr(&r.Sticky, DefaultSticky)
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v Duration) {
	if *p == 0 {
		*p = v
	}
}
