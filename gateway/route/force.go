package route

import (
	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// force is a compiled tester override.
type force struct {
	devices map[string]bool
	users   map[string]bool
	hdrName string
	hdrVal  string
	hasHdr  bool
	cluster string
	never   bool
}

func compileForce(f config.Force) force {
	c := force{cluster: f.Cluster, never: f.Never}
	if len(f.Devices) > 0 {
		c.devices = make(map[string]bool, len(f.Devices))
		for _, d := range f.Devices {
			c.devices[d] = true
		}
	}
	if len(f.Users) > 0 {
		c.users = make(map[string]bool, len(f.Users))
		for _, u := range f.Users {
			c.users[u] = true
		}
	}
	if f.Header != nil {
		c.hasHdr, c.hdrName, c.hdrVal = true, f.Header.Name, f.Header.Value
	}
	return c
}

// match reports whether req is one of this entry's testers, and by what.
func (f *force) match(req *codec.Request) (string, bool) {
	if f.devices != nil {
		if d := req.Device(); d != "" && f.devices[d] {
			return "device " + d, true
		}
	}
	if f.users != nil {
		if u := req.User(); u != "" && f.users[u] {
			return "user " + u, true
		}
	}
	if f.hasHdr {
		if v, ok := req.Header.Get(f.hdrName); ok && v == f.hdrVal {
			return "header " + f.hdrName + "=" + v, true
		}
	}
	return "", false
}
