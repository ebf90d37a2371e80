package config

// Cluster returns the cluster named name, or nil. The pointer aliases c.Clusters.
func (c *Config) Cluster(name string) *Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

// Listener returns the listener named name, or nil. The pointer aliases c.Listeners.
func (c *Config) Listener(name string) *Listener {
	for i := range c.Listeners {
		if c.Listeners[i].Name == name {
			return &c.Listeners[i]
		}
	}
	return nil
}

// App returns the app whose id is id, or nil. The pointer aliases c.Apps.
func (c *Config) App(id string) *App {
	for i := range c.Apps {
		if c.Apps[i].ID == id {
			return &c.Apps[i]
		}
	}
	return nil
}

// SubstituteDemoHost replaces the host DemoHost ("@demo") in every cluster with addr, the
// demo backend's actual listening address. Call it on the gateway's own copy (Clone) once
// the demo server listens, before building clusters.
func (c *Config) SubstituteDemoHost(addr string) {
	for i := range c.Clusters {
		for j, h := range c.Clusters[i].Hosts {
			if h == DemoHost {
				c.Clusters[i].Hosts[j] = addr
			}
		}
	}
}
