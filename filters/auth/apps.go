package auth

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/mgw-project/mgw/config"
)

// app is one caller the authenticator knows: its key and what it may call.
type app struct {
	id     string
	key    secret
	allow  allowList
	hasKey bool
	ver    *verifier // nil when !hasKey
}

// allowList matches operation types against an app's `apis`: exact names, `prefix.*`
// (matching every operation under prefix.) and `*`. An empty list allows everything.
type allowList struct {
	any      bool
	exact    map[string]struct{}
	prefixes []string // with the trailing '.'
}

func newAllowList(apis []string) allowList {
	if len(apis) == 0 {
		return allowList{any: true}
	}
	l := allowList{exact: make(map[string]struct{})}
	for _, a := range apis {
		switch {
		case a == "*":
			l.any = true
		case strings.HasSuffix(a, ".*"):
			l.prefixes = append(l.prefixes, strings.TrimSuffix(a, "*"))
		default:
			l.exact[a] = struct{}{}
		}
	}
	return l
}

func (l *allowList) allows(op string) bool {
	if l.any {
		return true
	}
	if _, ok := l.exact[op]; ok {
		return true
	}
	for _, p := range l.prefixes {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

// loadApps resolves every app's secret (config.App.ResolveSecret: inline, environment
// variable or file) into a table keyed by id. Errors name the app and never show a
// secret. Apps with no secret source at all are kept but can never authenticate (their
// requests get 401): such an app may exist only for routing switches; the log says so
// once, at load.
func loadApps(apps []config.App, getenv func(string) string, log *slog.Logger) (map[string]*app, error) {
	out := make(map[string]*app, len(apps))
	for i := range apps {
		a := &apps[i]
		p := fmt.Sprintf("apps[%d]", i)
		if a.ID == "" {
			return nil, fmt.Errorf("%s.id: empty", p)
		}
		if _, dup := out[a.ID]; dup {
			return nil, fmt.Errorf("%s.id: %q listed twice", p, a.ID)
		}
		ap := &app{id: a.ID, allow: newAllowList(a.APIs)}
		if a.Secret == "" && a.SecretEnv == "" && a.SecretFile == "" {
			log.Warn("app has no secret; its signed requests will be refused", "app", a.ID)
		} else {
			key, err := a.ResolveSecret(getenv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			ap.key, ap.hasKey, ap.ver = key, true, newVerifier(key)
		}
		out[a.ID] = ap
	}
	return out, nil
}
