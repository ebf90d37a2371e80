package config

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of c: no slice, map or pointer is shared, so the copy may be
// edited (by the admin API, or SubstituteDemoHost) while c is read elsewhere.
func (c *Config) Clone() *Config {
	n := *c
	n.Admin.Tokens = slices.Clone(c.Admin.Tokens)
	n.Admin.Hosts = slices.Clone(c.Admin.Hosts)
	n.Instance.Labels = maps.Clone(c.Instance.Labels)
	n.Listeners = slices.Clone(c.Listeners)
	for i := range n.Listeners {
		n.Listeners[i].Filters = n.Listeners[i].Filters.Clone()
	}
	n.Apps = slices.Clone(c.Apps)
	for i := range n.Apps {
		n.Apps[i].APIs = slices.Clone(n.Apps[i].APIs)
	}
	n.Clusters = slices.Clone(c.Clusters)
	for i := range n.Clusters {
		cl := &n.Clusters[i]
		cl.Hosts = slices.Clone(cl.Hosts)
		cl.Tags = slices.Clone(cl.Tags)
		cl.HealthCheck = clonePtr(cl.HealthCheck)
		cl.Outlier = clonePtr(cl.Outlier)
	}
	n.Routes = slices.Clone(c.Routes)
	for i := range n.Routes {
		n.Routes[i] = n.Routes[i].Clone()
	}
	n.Switches.MeshOnlyApps = slices.Clone(c.Switches.MeshOnlyApps)
	n.Switches = c.Switches.Clone()
	n.Fleet = c.Fleet.clone()
	return &n
}

// Clone returns a deep copy of r.
func (r Route) Clone() Route {
	r.Split = maps.Clone(r.Split)
	r.Fallback = slices.Clone(r.Fallback)
	if r.Force != nil {
		fs := make([]Force, len(r.Force))
		for i, f := range r.Force {
			f.Devices = slices.Clone(f.Devices)
			f.Users = slices.Clone(f.Users)
			f.Header = clonePtr(f.Header)
			fs[i] = f
		}
		r.Force = fs
	}
	r.Filters = r.Filters.Clone()
	r.Auth = r.Auth.Clone()
	r.RateLimit = r.RateLimit.Clone()
	r.AccessLog = r.AccessLog.Clone()
	return r
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Clone returns a deep copy of s, for the admin API's changes to start from.
func (s Switches) Clone() Switches {
	s.MeshOnlyApps = slices.Clone(s.MeshOnlyApps)
	s.Zones = clonePercentages(s.Zones)
	s.Labels = clonePercentages(s.Labels)
	return s
}

func clonePercentages(m map[string]map[string]int) map[string]map[string]int {
	if m == nil {
		return nil
	}
	out := make(map[string]map[string]int, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

// Redacted returns a deep copy of c without inline secrets, for showing (the admin API's
// /v1/config, logs). The names of secret_env variables and secret_file paths stay: they are
// not secrets and say where a key comes from.
func (c *Config) Redacted() *Config {
	n := c.Clone()
	for i := range n.Apps {
		n.Apps[i].Secret = ""
	}
	return n
}
