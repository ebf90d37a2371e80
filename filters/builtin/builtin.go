// Package builtin assembles a filters.Registry with mgw's built-in filters. It lives apart
// from package filters because the built-ins import filters (for the interface), and
// filters must not import them back.
package builtin

import (
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/accesslog"
	"github.com/mgw-project/mgw/filters/auth"
	"github.com/mgw-project/mgw/filters/ratelimit"
)

// NewRegistry returns a registry with "auth", "ratelimit" and "accesslog". The caller may
// Register more before building chains.
func NewRegistry() *filters.Registry {
	r := filters.NewRegistry()
	for name, f := range map[string]filters.Factory{
		auth.Name:      auth.Factory,
		ratelimit.Name: ratelimit.Factory,
		accesslog.Name: accesslog.Factory,
	} {
		if err := r.Register(name, f); err != nil {
			panic(err) // the names above are distinct constants
		}
	}
	return r
}
