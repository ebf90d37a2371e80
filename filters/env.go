package filters

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// Env is what a Factory gets to build one filter for one route or listener. It is only
// used during Build; filters copy what they need from it.
type Env struct {
	// Path is the configuration path of the route or listener, for error messages:
	// "routes[3]", "listeners[0]". Set by Build.
	Path string
	// Name labels the filter's metrics and logs: the route's API pattern or path prefix, or
	// the listener's name. Defaults to Path.
	Name string
	// Options are this filter's options as written in the config, nil when none were.
	// The filter is their only owner: it decodes them (DecodeOptions), applies its
	// defaults and checks them, so that a default or a rule is defined once.
	Options config.FilterOptions
	// OptionsPath is where the options are written, or would be, for error messages:
	// "routes[3].filters[1].ratelimit" (or "routes[3].ratelimit", the route-level key of
	// the first config format). Set by Build.
	OptionsPath string
	// Apps are the configured apps. The auth filter resolves their secrets with
	// (*config.App).ResolveSecret(Getenv) at Build; a filter never logs them.
	Apps []config.App
	// Getenv reads the environment for secret_env; nil means os.Getenv.
	Getenv func(string) string
	// Logger receives the filters' own logs (load warnings, debug refusals); nil discards.
	Logger *slog.Logger
	// AccessLogger receives the access lines; nil means Logger. Give it a handler over an
	// accesslog.Writer so workers never block on log I/O.
	AccessLogger *slog.Logger
	// Metrics is where the filters register their series; nil means a private set (the
	// series then go nowhere).
	Metrics *metrics.Set
	// Now is the clock; nil means time.Now. Tests pass a fake one.
	Now func() time.Time
	// State keeps stores across rebuilds of the same route (see State). Build sets the
	// registry's when nil; with a nil State every build starts with empty stores.
	State *State
	// Fleet holds the backends a fleet shares (global rate limits, nonces); nil on a
	// single instance.
	Fleet *Fleet
}

// Errorf returns an error naming the field under the route or listener:
// env.Errorf("filters[1]", "...") reads `routes[3].filters[1]: ...`. For a filter's own
// options use OptionErrorf.
func (e *Env) Errorf(field, format string, args ...any) error {
	return fmt.Errorf("%s.%s: %s", e.Path, field, fmt.Sprintf(format, args...))
}

// OptionErrorf returns an error naming one of the filter's options where it is written:
// env.OptionErrorf("rate", "%q is not N/s", v) reads
// `routes[3].filters[1].ratelimit.rate: "fast" is not N/s`.
func (e *Env) OptionErrorf(option, format string, args ...any) error {
	return fmt.Errorf("%s.%s: %s", e.optionsPath(), option, fmt.Sprintf(format, args...))
}

// DecodeOptions decodes e.Options into v, a pointer to the filter's options struct (yaml
// tags name the options), strictly: an unknown option or a value of the wrong type is an
// error naming it (`routes[3].filters[0].ratelimit.burts: unknown option "burts" (known:
// rate, burst, ...)`). Options not written leave v's fields as they were, so set defaults
// before or apply them after.
func (e *Env) DecodeOptions(v any) error { return e.Options.Decode(e.optionsPath(), v) }

func (e *Env) optionsPath() string {
	if e.OptionsPath != "" {
		return e.OptionsPath
	}
	return e.Path
}

// WithDefaults returns a copy of e with nil hooks replaced by their defaults (Build applies it;
// a filter constructed directly, like the HELLO authenticator, applies it itself).
func (e Env) WithDefaults() Env {
	if e.Name == "" {
		e.Name = e.Path
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.AccessLogger == nil {
		e.AccessLogger = e.Logger
	}
	if e.Metrics == nil {
		e.Metrics = metrics.NewSet()
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}
