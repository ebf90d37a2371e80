package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mgw-project/mgw/gateway/config"
)

// app is one caller the authenticator knows: its key and what it may call.
type app struct {
	id     string
	key    secret
	allow  allowList
	hasKey bool
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

// loadApps resolves every app's secret (from the config, an environment variable or a
// file) into a table keyed by id. Errors name the app's field and never show a secret.
// Apps without any secret are kept but can never authenticate (their requests get 401);
// the log says so once, at load.
func loadApps(apps []config.App, getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) (map[string]*app, error) {
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
		key, err := resolveSecret(p, a, getenv, readFile)
		if err != nil {
			return nil, err
		}
		if key == nil {
			log.Warn("app has no secret; its signed requests will be refused", "app", a.ID)
		}
		out[a.ID] = &app{id: a.ID, key: key, hasKey: key != nil, allow: newAllowList(a.APIs)}
	}
	return out, nil
}

// resolveSecret returns the key of a: Secret, else the variable SecretEnv, else the
// contents of SecretFile without trailing line breaks. nil, nil when none is set.
//
// TODO: switch to (*config.App).ResolveSecret once gateway/config has it.
func resolveSecret(p string, a *config.App, getenv func(string) string, readFile func(string) ([]byte, error)) (secret, error) {
	n := 0
	for _, s := range []string{a.Secret, a.SecretEnv, a.SecretFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%s: set at most one of secret, secret_env, secret_file", p)
	}
	switch {
	case a.Secret != "":
		return secret(a.Secret), nil
	case a.SecretEnv != "":
		v := getenv(a.SecretEnv)
		if v == "" {
			return nil, fmt.Errorf("%s.secret_env: environment variable %q is unset or empty", p, a.SecretEnv)
		}
		return secret(v), nil
	case a.SecretFile != "":
		b, err := readFile(a.SecretFile)
		if err != nil {
			// The error of os.ReadFile names the path and the cause, never the contents.
			return nil, fmt.Errorf("%s.secret_file: %w", p, err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("%s.secret_file: %q is empty", p, a.SecretFile)
		}
		return secret(b), nil
	}
	return nil, nil
}
