package route

import (
	"maps"
	"slices"

	"github.com/mgw-project/mgw/config"
)

// cloneConfig copies the parts of cfg a Table reads or a Router changes (instance,
// clusters, routes, switches), so a published Table never shares a map or slice with a
// caller that might write to it later. Other fields are copied shallowly; the route
// package never writes to them.
func cloneConfig(cfg *config.Config) *config.Config {
	c := *cfg
	c.Instance.Labels = maps.Clone(cfg.Instance.Labels)
	c.Clusters = slices.Clone(cfg.Clusters)
	for i := range c.Clusters {
		c.Clusters[i].Tags = slices.Clone(c.Clusters[i].Tags)
	}
	c.Routes = slices.Clone(cfg.Routes)
	for i := range c.Routes {
		c.Routes[i] = cloneRoute(c.Routes[i])
	}
	c.Switches = cfg.Switches.Clone()
	return &c
}

func cloneRoute(r config.Route) config.Route {
	r.Split = maps.Clone(r.Split)
	r.Fallback = slices.Clone(r.Fallback)
	r.Force = slices.Clone(r.Force)
	for i := range r.Force {
		f := &r.Force[i]
		f.Devices = slices.Clone(f.Devices)
		f.Users = slices.Clone(f.Users)
		if f.Header != nil {
			h := *f.Header
			f.Header = &h
		}
	}
	r.Filters = slices.Clone(r.Filters)
	return r
}
