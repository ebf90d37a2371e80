package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Fleet connects an instance to the engines a fleet of instances shares (docs/fleet.md):
// etcd for routes, clusters and switches, Redis for push logs, device presence, global
// rate limits and nonces. Both are optional; changing them needs a restart.
type Fleet struct {
	Etcd  *FleetEtcd  `yaml:"etcd" json:"etcd,omitempty"`
	Redis *FleetRedis `yaml:"redis" json:"redis,omitempty"`
}

// FleetEtcd is where the fleet's config overlay lives: <prefix>routes/<route key>,
// <prefix>clusters/<name> and <prefix>switches, each the YAML of one entry.
type FleetEtcd struct {
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// Prefix is the key prefix of the overlay; default /mgw/. It ends with "/".
	Prefix string `yaml:"prefix" json:"prefix"`
	// DialTimeout bounds connecting and each request to etcd; default 2s.
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout"`
}

// FleetRedis is the Redis the fleet shares.
type FleetRedis struct {
	Addr string `yaml:"addr" json:"addr"` // host:port
	// Prefix starts every key and channel mgw uses; default "mgw:". Two fleets on one
	// Redis need two prefixes.
	Prefix string `yaml:"prefix" json:"prefix"`
	// PresenceTTL is how long a device's presence (which instance holds its connection)
	// outlives an instance that stopped refreshing it; default 30s.
	PresenceTTL Duration `yaml:"presence_ttl" json:"presence_ttl"`
	// Timeout bounds one Redis command; default 1s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Defaults of the fleet section.
const (
	DefaultFleetEtcdPrefix    = "/mgw/"
	DefaultFleetDialTimeout   = Duration(2 * time.Second)
	DefaultFleetRedisPrefix   = "mgw:"
	DefaultFleetPresenceTTL   = Duration(30 * time.Second)
	DefaultFleetRedisTimeout  = Duration(time.Second)
	maxFleetOverlayEntryBytes = 1 << 20
)

func (f *Fleet) applyDefaults() {
	if e := f.Etcd; e != nil {
		setStr(&e.Prefix, DefaultFleetEtcdPrefix)
		setDur(&e.DialTimeout, DefaultFleetDialTimeout)
	}
	if r := f.Redis; r != nil {
		setStr(&r.Prefix, DefaultFleetRedisPrefix)
		setDur(&r.PresenceTTL, DefaultFleetPresenceTTL)
		setDur(&r.Timeout, DefaultFleetRedisTimeout)
	}
}

func (f Fleet) clone() Fleet {
	if f.Etcd != nil {
		e := *f.Etcd
		e.Endpoints = slices.Clone(e.Endpoints)
		f.Etcd = &e
	}
	f.Redis = clonePtr(f.Redis)
	return f
}

func (v *validator) fleet() {
	if e := v.c.Fleet.Etcd; e != nil {
		if len(e.Endpoints) == 0 {
			v.add("fleet.etcd.endpoints", "must name at least one etcd endpoint (host:port)")
		}
		for i, ep := range e.Endpoints {
			hp := strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://")
			v.check(fmt.Sprintf("fleet.etcd.endpoints[%d]", i), checkUpstreamAddr(hp))
		}
		if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
			v.add("fleet.etcd.prefix", "%q must start and end with \"/\"", e.Prefix)
		}
		v.positiveDur("fleet.etcd.dial_timeout", e.DialTimeout)
	}
	if r := v.c.Fleet.Redis; r != nil {
		if r.Addr == "" {
			v.add("fleet.redis.addr", "must be host:port")
		} else {
			v.check("fleet.redis.addr", checkUpstreamAddr(r.Addr))
		}
		if r.Prefix == "" {
			v.add("fleet.redis.prefix", "must not be empty")
		}
		v.positiveDur("fleet.redis.presence_ttl", r.PresenceTTL)
		v.positiveDur("fleet.redis.timeout", r.Timeout)
	}
}

// Overlay is what a fleet store (etcd) holds over the file's config: entries that replace
// the file's entry with the same key or add one. A nil Switches keeps the file's.
type Overlay struct {
	Routes   map[string]Route   // by RouteKey
	Clusters map[string]Cluster // by name
	Switches *Switches
}

// RouteKey is the key a route is known by in the admin API and the fleet store: its api
// pattern, else its path.
func RouteKey(r *Route) string {
	if r.API != "" {
		return r.API
	}
	return r.Path
}

// WithOverlay returns a copy of c with o's entries in place of the file's entries of the
// same key, and o's new entries after the file's (in key order, so every instance builds
// the same config from the same overlay). c is not changed; o may be nil.
func (c *Config) WithOverlay(o *Overlay) *Config {
	n := c.Clone()
	if o == nil {
		return n
	}
	for i := range n.Routes {
		if r, ok := o.Routes[RouteKey(&n.Routes[i])]; ok {
			n.Routes[i] = r.Clone()
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Routes)) {
		if !slices.ContainsFunc(c.Routes, func(r Route) bool { return RouteKey(&r) == k }) {
			n.Routes = append(n.Routes, o.Routes[k].Clone())
		}
	}
	for i := range n.Clusters {
		if cl, ok := o.Clusters[n.Clusters[i].Name]; ok {
			n.Clusters[i] = cl.clone()
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.Clusters)) {
		if c.Cluster(k) == nil {
			n.Clusters = append(n.Clusters, o.Clusters[k].clone())
		}
	}
	if o.Switches != nil {
		n.Switches = o.Switches.Clone()
	}
	return n
}

func (cl Cluster) clone() Cluster {
	cl.Hosts = slices.Clone(cl.Hosts)
	cl.Tags = slices.Clone(cl.Tags)
	cl.HealthCheck = clonePtr(cl.HealthCheck)
	cl.Outlier = clonePtr(cl.Outlier)
	return cl
}

// ParseRoute decodes one route as the fleet store holds it (YAML or JSON, strictly) and
// applies its defaults. key is the route's key in the store: a route that names neither
// api nor path takes it (a path when it starts with "/"), one that names another is
// refused. It does not validate the route against a config: WithOverlay and Validate do.
func ParseRoute(key string, data []byte) (Route, error) {
	var r Route
	if err := decodeEntry(data, &r); err != nil {
		return r, err
	}
	switch {
	case r.API == "" && r.Path == "":
		if strings.HasPrefix(key, "/") {
			r.Path = key
		} else {
			r.API = key
		}
	case RouteKey(&r) != key:
		return r, fmt.Errorf("route names %q but is stored under %q: the key must be the route's api or path", RouteKey(&r), key)
	}
	r.applyDefaults()
	return r, nil
}

// ParseCluster decodes one cluster as the fleet store holds it; name is its key there.
func ParseCluster(name string, data []byte) (Cluster, error) {
	var cl Cluster
	if err := decodeEntry(data, &cl); err != nil {
		return cl, err
	}
	switch {
	case cl.Name == "":
		cl.Name = name
	case cl.Name != name:
		return cl, fmt.Errorf("cluster names %q but is stored under %q", cl.Name, name)
	}
	cl.applyDefaults()
	return cl, nil
}

// ParseSwitches decodes the switches as the fleet store holds them.
func ParseSwitches(data []byte) (Switches, error) {
	var s Switches
	err := decodeEntry(data, &s)
	return s, err
}

func decodeEntry(data []byte, v any) error {
	if len(data) > maxFleetOverlayEntryBytes {
		return fmt.Errorf("%d bytes, over the limit of %d", len(data), maxFleetOverlayEntryBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty value")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no YAML document")
		}
		return annotate(data, err)
	}
	return nil
}
