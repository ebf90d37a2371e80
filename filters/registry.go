package filters

import (
	"errors"
	"fmt"
	"sort"

	"github.com/mgw-project/mgw/config"
)

// Factory builds one filter instance for one route or listener from env. It validates the
// filter's options and returns errors made with env.Errorf, so they name the field. It is
// called at configuration load, never per request.
type Factory func(env *Env) (Filter, error)

// Registry maps filter names to factories. The gateway holds one (filters/builtin makes
// one with the built-in filters); there is no global registry. Register is for setup;
// Build may be called concurrently once registration is done.
type Registry struct {
	factories map[string]Factory
	state     *State
}

// NewRegistry returns an empty registry. See filters/builtin for one with the built-ins.
func NewRegistry() *Registry {
	return &Registry{factories: make(map[string]Factory), state: NewState()}
}

// Register adds a factory under name. Registering a name twice is an error.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" || f == nil {
		return fmt.Errorf("filters: register %q: empty name or nil factory", name)
	}
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("filters: register %q: already registered", name)
	}
	r.factories[name] = f
	return nil
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.factories))
	for n := range r.factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Sweep releases the stores (replay, rate-limit buckets) of routes that no Build asked for
// since the previous Sweep. Call it once a new configuration's chains are all built, so a
// reload keeps unchanged routes' stores and frees removed ones'. Safe with concurrent
// requests: chains already built keep their stores.
func (r *Registry) Sweep() int { return r.state.Sweep() }

// State is the registry's store of filter state, for building a filter outside a chain
// (the MMTP session's HELLO check) that shares stores with the chains.
func (r *Registry) State() *State { return r.state }

// Build builds the chain of a route or listener from its filters, in the order given
// (config.Route.FilterUses, config.Listener.FilterUses): each filter's factory gets env
// with the filter's Options and OptionsPath and decodes and checks them. path is the
// configuration path of the route or listener ("routes[3]"), used in errors:
// `routes[3].filters[1]: unknown filter "ratelimt"`. Every problem is reported, joined.
// An empty list gives an empty chain. Build registers the filters' metrics in env.Metrics
// (idempotently, so rebuilding on a reload reuses the same series) and, through the
// registry's State, reuses the stores of a route built before under the same label
// (env.Name) and parameters.
func (r *Registry) Build(path string, uses []config.FilterUse, env Env) (*Chain, error) {
	env.Path = path
	if env.State == nil {
		env.State = r.state
	}
	env = env.WithDefaults()
	fs := make([]Filter, 0, len(uses))
	seen := make(map[string]int, len(uses))
	var errs []error
	for i, u := range uses {
		if j, dup := seen[u.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.filters[%d]: filter %q already listed at filters[%d]", path, i, u.Name, j))
			continue
		}
		seen[u.Name] = i
		fac, ok := r.factories[u.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.filters[%d]: unknown filter %q (known: %v)", path, i, u.Name, r.Names()))
			continue
		}
		e := env
		e.Options, e.OptionsPath = u.Options, u.OptionsPath
		if e.OptionsPath == "" {
			e.OptionsPath = fmt.Sprintf("%s.filters[%d].%s", path, i, u.Name)
		}
		f, err := fac(&e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fs = append(fs, f)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Chain{filters: fs}, nil
}
