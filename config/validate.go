package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DemoHost, as a cluster host, stands for the address of the in-process demo backend; the
// gateway substitutes it (SubstituteDemoHost) once the demo server listens.
const DemoHost = "@demo"

// Limits on what routing may hold. They bound the per-request work (one hash per split
// cluster) and the size of what the admin API accepts.
const (
	MaxWeight        = 1_000_000 // one split weight, so that sums cannot overflow
	MaxSplitClusters = 64        // clusters in one split or fallback list
	MaxForceEntries  = 64
	MaxForceIDs      = 10_000 // devices + users in one force entry
	MaxRoutePath     = 256    // a path route's prefix: it names the route in metrics and the admin API
	MaxRoutes        = 10_000
)

// Validate checks the whole config and returns every problem found, joined with
// errors.Join, each as `field.path: what is wrong with "value"`. Call it after
// ApplyDefaults (Parse does that). Secrets never appear in its errors.
//
// It is the one validator: `mgw serve -check`, start and reload run it (through the
// gateway's one snapshot builder), and its routing rules are ValidateRouting's, which the
// routing table runs on every admin API change, so no path accepts what another refuses.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.top()
	v.listeners()
	v.apps()
	v.clusters()
	v.routing()
	return errors.Join(v.errs...)
}

// ValidateRouting checks what a routing table is built from (cluster names and tags,
// routes, switches) with exactly the rules Validate applies to them; the rest of the config
// is not looked at. The routing table runs it on every build, including each admin API
// change, which alters only these parts of a config Validate accepted.
func (c *Config) ValidateRouting() error {
	v := &validator{c: c}
	v.clusterNames()
	v.routing()
	return errors.Join(v.errs...)
}

func (v *validator) routing() {
	v.routes()
	v.switches()
}

type validator struct {
	c    *Config
	errs []error
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// check records err, if any, under path.
func (v *validator) check(path string, err error) {
	if err != nil {
		v.errs = append(v.errs, fmt.Errorf("%s: %w", path, err))
	}
}

func (v *validator) oneOf(path, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.add(path, "%q is not one of %s", truncate(val, 64), strings.Join(allowed, ", "))
	}
}

func (v *validator) nonNeg(path string, n int) {
	if n < 0 {
		v.add(path, "%d is negative", n)
	}
}

func (v *validator) nonNegDur(path string, d Duration) {
	if d < 0 {
		v.add(path, "%s is negative", d)
	}
}

func (v *validator) top() {
	c := v.c
	v.oneOf("engine", c.Engine, "epoll", "rwloop")
	v.admin()
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	if c.Runtime.GOMEMLIMIT != "" {
		_, err := ParseByteSize(c.Runtime.GOMEMLIMIT)
		v.check("runtime.gomemlimit", err)
	}
	v.nonNeg("runtime.pollers", c.Runtime.Pollers)
	v.nonNeg("runtime.workers", c.Runtime.Workers)
	v.nonNeg("runtime.max_conns", c.Runtime.MaxConns)
	v.nonNegDur("runtime.drain_timeout", c.Runtime.DrainTime)
	v.nonNegDur("runtime.drain_spread", c.Runtime.DrainSpread)
	if c.Runtime.DrainSpread > 0 && c.Runtime.DrainTime > 0 && c.Runtime.DrainSpread >= c.Runtime.DrainTime {
		v.add("runtime.drain_spread", "%s is not shorter than runtime.drain_timeout %s: the last GOAWAYs would come after the deadline",
			c.Runtime.DrainSpread, c.Runtime.DrainTime)
	}
	v.check("runtime.queued_budget", checkBudget(c.Runtime.QueuedBudget))
	v.check("runtime.pending_budget", checkBudget(c.Runtime.PendingBudget))
	v.admission()
	v.push()
	v.fleet()
	if c.Demo.Enabled {
		v.check("demo.listen", checkListenAddr(c.Demo.Listen))
	}
	if c.Instance.Zone != "" {
		v.check("instance.zone", checkName(c.Instance.Zone))
	}
	for _, k := range sortedKeys(c.Instance.Labels) {
		v.check("instance.labels."+k, checkLabelKey(k))
	}
}

func (v *validator) admission() {
	a := &v.c.Admission
	v.nonNeg("admission.limit", a.Limit)
	v.nonNeg("admission.min_limit", a.MinLimit)
	v.nonNeg("admission.max_limit", a.MaxLimit)
	if a.MaxLimit > 0 && a.MinLimit > a.MaxLimit {
		v.add("admission.min_limit", "%d is above admission.max_limit %d", a.MinLimit, a.MaxLimit)
	}
	v.nonNegDur("admission.queue_target", a.QueueTarget)
	v.nonNegDur("admission.shed_after", a.ShedAfter)
}

func (v *validator) push() {
	p := &v.c.Push
	v.positive("push.max_messages", p.MaxMessages)
	maxBytes, err := ParseByteSize(p.MaxBytes)
	if err == nil && maxBytes <= 0 {
		err = fmt.Errorf("%q must be above 0", p.MaxBytes)
	}
	v.check("push.max_bytes", err)
	budget, err := ParseByteSize(p.Budget)
	if err == nil && budget < maxBytes {
		err = fmt.Errorf("%q is below push.max_bytes %q: not even one device's log would fit", p.Budget, p.MaxBytes)
	}
	v.check("push.budget", err)
	v.positiveDur("push.default_ttl", p.DefaultTTL)
	v.positiveDur("push.max_ttl", p.MaxTTL)
	if p.MaxTTL > 0 && p.DefaultTTL > p.MaxTTL {
		v.add("push.default_ttl", "%s is above push.max_ttl %s", p.DefaultTTL, p.MaxTTL)
	}
}

// Bytes returns push.max_bytes and push.budget in bytes (0 for one that does not
// parse, which Validate reports).
func (p Push) Bytes() (maxBytes, budget int64) {
	maxBytes, _ = ParseByteSize(p.MaxBytes)
	budget, _ = ParseByteSize(p.Budget)
	return maxBytes, budget
}

func (v *validator) listeners() {
	c := v.c
	if len(c.Listeners) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	names := map[string]int{}
	addrs := map[string]string{}
	if c.Admin.Listen != "" {
		addrs[c.Admin.Listen] = "admin.listen"
	}
	if h := c.Health.Listen; h != "" {
		if other, dup := addrs[h]; dup && !strings.HasSuffix(h, ":0") {
			v.add("health.listen", "%q is already used by %s", h, other)
		}
		addrs[h] = "health.listen"
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if err := checkName(l.Name); err != nil {
			v.check(p+".name", err)
		} else if j, dup := names[l.Name]; dup {
			v.add(p+".name", "%q is already the name of listeners[%d]", l.Name, j)
		} else {
			names[l.Name] = i
		}
		if err := checkListenAddr(l.Listen); err != nil {
			v.check(p+".listen", err)
		} else if other, dup := addrs[l.Listen]; dup && !strings.HasSuffix(l.Listen, ":0") {
			v.add(p+".listen", "%q is already used by %s", l.Listen, other)
		} else {
			addrs[l.Listen] = p + ".listen"
		}
		v.oneOf(p+".protocol", l.Protocol, "mmtp", "http1")
		if l.RequireHello && l.Protocol == "http1" {
			v.add(p+".require_hello", "applies only to protocol mmtp")
		}
		v.nonNeg(p+".max_conns", l.MaxConns)
		v.nonNeg(p+".max_header_bytes", l.MaxHeaderBytes)
		v.nonNeg(p+".max_body_bytes", l.MaxBodyBytes)
		v.nonNeg(p+".max_header_entries", l.MaxHeaderEntries)
		v.nonNeg(p+".max_in_flight", l.MaxInFlight)
		v.nonNegDur(p+".idle_timeout", l.IdleTimeout)
		v.nonNegDur(p+".frame_timeout", l.FrameTimeout)
		v.nonNegDur(p+".handshake_timeout", l.HandshakeTimeout)
		v.nonNegDur(p+".write_stall_timeout", l.WriteStallTimeout)
		v.nonNegDur(p+".body_timeout", l.BodyTimeout)
		if l.BodyTimeout != 0 && l.Protocol == "mmtp" {
			v.add(p+".body_timeout", "applies only to protocol http1 (an MMTP frame is bounded by frame_timeout)")
		}
		v.nonNegDur(p+".max_connection_age", l.MaxConnectionAge)
		v.nonNegDur(p+".max_connection_age_grace", l.MaxConnectionAgeGrace)
		v.nonNeg(p+".max_conn_rate", l.MaxConnRate)
		v.nonNeg(p+".max_hello_rate", l.MaxHelloRate)
		if l.MaxHelloRate != 0 && l.Protocol == "http1" {
			v.add(p+".max_hello_rate", "applies only to protocol mmtp")
		}
		v.filterList(p+".filters", l.Filters)
	}
}

// filterList checks a filters list: names, each once. The options are each filter's to
// check, when the chain is built.
func (v *validator) filterList(p string, fs FilterList) {
	seen := map[string]bool{}
	for j, f := range fs {
		fp := fmt.Sprintf("%s[%d]", p, j)
		if err := checkFilterName(f.Name); err != nil {
			v.check(fp, err)
		} else if seen[f.Name] {
			v.add(fp, "%q is listed twice", f.Name)
		}
		seen[f.Name] = true
	}
}

// routeFilterOptions refuses a filter's options written both in its filters entry and in
// the route-level key of the first format: one of them would be silently ignored.
func (v *validator) routeFilterOptions(p string, r *Route) {
	for _, k := range r.routeOptionKeys() {
		if i := r.Filters.Index(k.name); k.opts != nil && i >= 0 && r.Filters[i].Options != nil {
			v.add(p+"."+k.name, "%s's options are also given in %s.filters[%d]; keep one (the filters entry is preferred)", k.name, p, i)
		}
	}
}

func (v *validator) apps() {
	ids := map[string]int{}
	for i := range v.c.Apps {
		a := &v.c.Apps[i]
		p := fmt.Sprintf("apps[%d]", i)
		switch {
		case a.ID == "":
			v.add(p+".id", "must not be empty")
		case len(a.ID) > 128 || strings.ContainsAny(a.ID, " \t\r\n"):
			v.add(p+".id", "%q must be at most 128 bytes without spaces", truncate(a.ID, 64))
		default:
			if j, dup := ids[a.ID]; dup {
				v.add(p+".id", "%q is already the id of apps[%d]", a.ID, j)
			} else {
				ids[a.ID] = i
			}
		}
		n := 0
		for _, s := range []string{a.Secret, a.SecretEnv, a.SecretFile} {
			if s != "" {
				n++
			}
		}
		if n > 1 {
			v.add(p, "set at most one of secret, secret_env, secret_file")
		}
		for j, api := range a.APIs {
			v.check(fmt.Sprintf("%s.apis[%d]", p, j), CheckAPIPattern(api))
		}
	}
}

// clusterNames checks the names and tags that routes and switches refer to.
func (v *validator) clusterNames() {
	names := map[string]int{}
	for i := range v.c.Clusters {
		cl := &v.c.Clusters[i]
		p := fmt.Sprintf("clusters[%d]", i)
		if err := checkName(cl.Name); err != nil {
			v.check(p+".name", err)
		} else if j, dup := names[cl.Name]; dup {
			v.add(p+".name", "%q is already the name of clusters[%d]", cl.Name, j)
		} else {
			names[cl.Name] = i
		}
		for j, t := range cl.Tags {
			v.check(fmt.Sprintf("%s.tags[%d]", p, j), checkName(t))
		}
	}
}

func (v *validator) clusters() {
	v.clusterNames()
	for i := range v.c.Clusters {
		cl := &v.c.Clusters[i]
		p := fmt.Sprintf("clusters[%d]", i)
		if len(cl.Hosts) == 0 {
			v.add(p+".hosts", "at least one host:port is required")
		}
		seen := map[string]bool{}
		for j, h := range cl.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, j)
			switch {
			case h == DemoHost:
				if !v.c.Demo.Enabled {
					v.add(hp, "%q needs demo.enabled: true", h)
				}
			default:
				v.check(hp, checkUpstreamAddr(h))
			}
			if seen[h] {
				v.add(hp, "%q is listed twice", truncate(h, 128))
			}
			seen[h] = true
		}
		if cl.PathPrefix != "" {
			if err := checkPath(cl.PathPrefix); err != nil {
				v.check(p+".path_prefix", err)
			} else if strings.HasSuffix(cl.PathPrefix, "/") {
				v.add(p+".path_prefix", "%q must not end with / (requests go to <prefix>/OP)", cl.PathPrefix)
			}
		}
		v.oneOf(p+".policy", cl.Policy, "round_robin", "least_requests")
		v.positiveDur(p+".timeout", cl.Timeout)
		v.positiveDur(p+".connect_timeout", cl.ConnectTimeout)
		v.nonNeg(p+".max_conns_per_host", cl.MaxConnsPerHost)
		v.nonNeg(p+".max_idle_per_host", cl.MaxIdlePerHost)
		v.nonNegDur(p+".idle_conn_timeout", cl.IdleConnTimeout)
		v.nonNeg(p+".max_in_flight", cl.MaxInFlight)
		if h := cl.HealthCheck; h != nil {
			hp := p + ".health_check"
			v.check(hp+".path", checkPath(h.Path))
			v.positiveDur(hp+".interval", h.Interval)
			v.positiveDur(hp+".timeout", h.Timeout)
			if h.Interval > 0 && h.Timeout > h.Interval {
				v.add(hp+".timeout", "%s is longer than the interval %s", h.Timeout, h.Interval)
			}
			v.positive(hp+".healthy_threshold", h.HealthyThreshold)
			v.positive(hp+".unhealthy_threshold", h.UnhealthyThreshold)
		}
		if o := cl.Outlier; o != nil {
			v.positive(p+".outlier.consecutive_failures", o.ConsecutiveFailures)
			v.positiveDur(p+".outlier.eject_for", o.EjectFor)
		}
	}
}

// positive and positiveDur check fields whose zero was replaced by a default, so only a
// negative value written in the file can fail; the message says so.
func (v *validator) positive(path string, n int) {
	if n <= 0 {
		v.add(path, "%d must be positive", n)
	}
}

func (v *validator) positiveDur(path string, d Duration) {
	if d <= 0 {
		v.add(path, "%s must be positive", d)
	}
}

func (v *validator) routes() {
	if len(v.c.Routes) > MaxRoutes {
		v.add("routes", "%d routes, over the limit of %d", len(v.c.Routes), MaxRoutes)
		return
	}
	apis := map[string]int{}
	paths := map[string]int{}
	for i := range v.c.Routes {
		r := &v.c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.API != "" && r.Path != "":
			v.add(p, "set only one of api (%q) and path (%q)", truncate(r.API, 64), truncate(r.Path, 64))
		case r.API == "" && r.Path == "":
			v.add(p, "set one of api and path")
		case r.API != "":
			if err := CheckAPIPattern(r.API); err != nil {
				v.check(p+".api", err)
			} else if j, dup := apis[r.API]; dup {
				v.add(p+".api", "%q duplicates routes[%d]", r.API, j)
			} else {
				apis[r.API] = i
			}
		default:
			if err := checkPath(r.Path); err != nil {
				v.check(p+".path", err)
			} else if len(r.Path) > MaxRoutePath {
				v.add(p+".path", "%q is longer than %d bytes", truncate(r.Path, 64), MaxRoutePath)
			} else if j, dup := paths[r.Path]; dup {
				v.add(p+".path", "%q duplicates routes[%d]", r.Path, j)
			} else {
				paths[r.Path] = i
			}
		}
		v.split(p+".split", r.Split)
		if r.Sticky != "" { // "": the default, for a config built without ApplyDefaults
			v.oneOf(p+".sticky", r.Sticky, "device", "user", "app", "client", "none")
		}
		if len(r.Fallback) > MaxSplitClusters {
			v.add(p+".fallback", "%d clusters, over the limit of %d", len(r.Fallback), MaxSplitClusters)
		}
		seen := map[string]bool{}
		for j, f := range r.Fallback {
			fp := fmt.Sprintf("%s.fallback[%d]", p, j)
			if v.c.Cluster(f) == nil {
				v.add(fp, "unknown cluster %q", truncate(f, 64))
			} else if seen[f] {
				v.add(fp, "%q is listed twice", f)
			}
			seen[f] = true
		}
		if len(r.Force) > MaxForceEntries {
			v.add(p+".force", "%d entries, over the limit of %d", len(r.Force), MaxForceEntries)
		}
		for j := range r.Force {
			v.force(fmt.Sprintf("%s.force[%d]", p, j), &r.Force[j])
		}
		v.filterList(p+".filters", r.Filters)
		v.routeFilterOptions(p, r)
		v.nonNeg(p+".max_body_bytes", r.MaxBodyBytes)
		v.nonNegDur(p+".timeout", r.Timeout)
	}
}

func (v *validator) split(p string, split map[string]int) {
	if len(split) == 0 {
		v.add(p, "empty; name at least one cluster with a positive weight")
		return
	}
	if len(split) > MaxSplitClusters {
		v.add(p, "%d clusters, over the limit of %d", len(split), MaxSplitClusters)
	}
	total := 0
	for _, name := range sortedKeys(split) {
		w := split[name]
		if v.c.Cluster(name) == nil {
			v.add(p+"."+name, "unknown cluster %q", truncate(name, 64))
		}
		switch {
		case w < 0:
			v.add(p+"."+name, "weight %d is negative", w)
		case w > MaxWeight:
			v.add(p+"."+name, "weight %d is over the limit of %d", w, MaxWeight)
		default:
			total += w
		}
	}
	if total == 0 {
		v.add(p, "all weights are zero; at least one must be positive")
	}
}

func (v *validator) force(p string, f *Force) {
	if f.Cluster == "" {
		v.add(p+".cluster", "must name a cluster")
	} else if v.c.Cluster(f.Cluster) == nil {
		v.add(p+".cluster", "unknown cluster %q", truncate(f.Cluster, 64))
	}
	if len(f.Devices) == 0 && len(f.Users) == 0 && f.Header == nil {
		v.add(p, "matches nothing; give devices, users or header")
	}
	if n := len(f.Devices) + len(f.Users); n > MaxForceIDs {
		v.add(p, "%d device and user ids, over the limit of %d", n, MaxForceIDs)
	}
	for j, d := range f.Devices {
		if d == "" {
			v.add(fmt.Sprintf("%s.devices[%d]", p, j), "must not be empty")
		}
	}
	for j, u := range f.Users {
		if u == "" {
			v.add(fmt.Sprintf("%s.users[%d]", p, j), "must not be empty")
		}
	}
	if h := f.Header; h != nil && h.Name == "" {
		v.add(p+".header.name", "must not be empty")
	} else if h != nil && len(h.Name) > MaxAPILen {
		v.add(p+".header.name", "%q is longer than %d bytes", truncate(h.Name, 64), MaxAPILen)
	}
}

func (v *validator) switches() {
	s := &v.c.Switches
	seen := map[string]bool{}
	for j, id := range s.MeshOnlyApps {
		p := fmt.Sprintf("switches.mesh_only_apps[%d]", j)
		if v.c.App(id) == nil {
			v.add(p, "unknown app %q", truncate(id, 64))
		} else if seen[id] {
			v.add(p, "%q is listed twice", id)
		}
		seen[id] = true
	}
	if len(s.MeshOnlyApps) > 0 && !v.hasTag("mesh") {
		v.add("switches.mesh_only_apps", "no cluster has tag \"mesh\"")
	}
	v.percentages("switches.zones", s.Zones, checkName)
	v.percentages("switches.labels", s.Labels, checkLabelSelector)
}

// percentages checks switches of one kind, each {tag: percent}: the percents of one
// switch share the traffic, so together they may not pass 100.
func (v *validator) percentages(p string, m map[string]map[string]int, checkKey func(string) error) {
	for _, k := range sortedKeys(m) {
		kp := p + "." + k
		v.check(kp, checkKey(k))
		if len(m[k]) == 0 {
			v.add(kp, "empty; give {tag: percent}")
		}
		sum, valid := 0, true
		for _, tag := range sortedKeys(m[k]) {
			pct := m[k][tag]
			if pct < 0 || pct > 100 {
				v.add(kp+"."+tag, "percent %d is not within 0..100", pct)
				valid = false
			}
			sum += pct
			if !v.hasTag(tag) {
				v.add(kp+"."+tag, "no cluster has tag %q", truncate(tag, 64))
			}
		}
		if valid && sum > 100 {
			v.add(kp, "percents add up to %d, over 100", sum)
		}
	}
}

// checkLabelKey accepts a label key: a name, optionally with '/' as in Kubernetes keys
// (topology.kubernetes.io/zone).
func checkLabelKey(k string) error {
	for part := range strings.SplitSeq(k, "/") {
		if err := checkName(part); err != nil {
			return fmt.Errorf("label key %q: %w", truncate(k, 64), err)
		}
	}
	return nil
}

// checkLabelSelector accepts "key" or "key=value".
func checkLabelSelector(s string) error {
	k, val, hasVal := strings.Cut(s, "=")
	if err := checkLabelKey(k); err != nil {
		return err
	}
	if hasVal && strings.ContainsAny(val, " \t\r\n") {
		return fmt.Errorf("%q: the value must not contain spaces", s)
	}
	return nil
}

func (v *validator) hasTag(tag string) bool {
	for i := range v.c.Clusters {
		if slices.Contains(v.c.Clusters[i].Tags, tag) {
			return true
		}
	}
	return false
}

// sortedKeys walks a map in a stable order, so errors and results do not change between
// runs.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
