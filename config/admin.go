package config

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Admin is the admin listener: metrics, stats, config, pprof, route changes.
//
// Safe by default: with no tokens it must listen on loopback or a unix socket, and only
// local peers may change anything. With tokens, every change and every look at internals
// needs `Authorization: Bearer <token>`. Either way a request whose Host (or a browser's
// Origin) is not this listener's own name is refused, which defeats DNS rebinding.
type Admin struct {
	// Listen is host:port or unix:/path (a socket created mode 0600); "" disables.
	Listen string `yaml:"listen" json:"listen"`
	// Tokens are the credentials; each names where its value comes from, never the value.
	// Several may be valid at once, so a token can be rotated without a gap.
	Tokens []AdminToken `yaml:"tokens" json:"tokens,omitempty"`
	// Hosts are further names (or IPs) a request's Host and Origin may carry, for an admin
	// listener reached through a DNS name or a proxy; localhost, the listen host and the IP
	// a client connected to are always accepted.
	Hosts []string `yaml:"hosts" json:"hosts,omitempty"`
	// Reads is "open" (default): /healthz, /readyz, /metrics and /v1/stats need no token;
	// or "token": they need one too.
	Reads string `yaml:"reads" json:"reads"`
}

// AdminToken is one named admin credential: its value is read from the environment
// variable Env or the file File (exactly one), never from the config text.
type AdminToken struct {
	// Name identifies the token in the audit log and metrics; it is not secret.
	Name string `yaml:"name" json:"name"`
	Env  string `yaml:"env" json:"env,omitempty"`
	File string `yaml:"file" json:"file,omitempty"`
	// ReadOnly tokens may read everything but change nothing (dashboards, scripts).
	ReadOnly bool `yaml:"read_only" json:"read_only,omitempty"`
}

// Health is the probe listener: /healthz, /readyz and /metrics only, no token, nothing
// that changes or reveals configuration, so it may listen where probes and scrapers reach.
type Health struct {
	Listen string `yaml:"listen" json:"listen"` // host:port; "" disables
}

// Admin.reads values.
const (
	AdminReadsOpen  = "open"
	AdminReadsToken = "token"
)

// MinAdminTokenBytes is the shortest token accepted: 16 bytes of `openssl rand -hex 16`.
const MinAdminTokenBytes = 16

// unixPrefix marks a unix-socket listen address.
const unixPrefix = "unix:"

// UnixPath returns the socket path of a `unix:/path` listen address.
func (a *Admin) UnixPath() (string, bool) { return strings.CutPrefix(a.Listen, unixPrefix) }

// Local reports whether only this machine can reach the listener: a unix socket, or a
// host that is a loopback IP or `localhost`. An empty host (every address) is not local.
func (a *Admin) Local() bool {
	if _, ok := a.UnixPath(); ok {
		return true
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Resolve reads the token's value through getenv (nil: os.Getenv) or from its file; one
// trailing newline is trimmed. Errors name the token, the variable or the file, never
// the value. path is the token's field path for messages (admin.tokens[0]).
func (t *AdminToken) Resolve(path string, getenv func(string) string) ([]byte, error) {
	var b []byte
	switch {
	case t.Env != "":
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(t.Env)
		if v == "" {
			return nil, fmt.Errorf("%s.env: environment variable %s (token %q) is unset or empty", path, t.Env, t.Name)
		}
		b = []byte(v)
	case t.File != "":
		f, err := os.Open(t.File)
		if err != nil {
			return nil, fmt.Errorf("%s.file: token %q: %w", path, t.Name, scrubPathErr(err))
		}
		defer f.Close()
		b, err = io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%s.file: token %q: %s: %w", path, t.Name, t.File, scrubPathErr(err))
		}
		if len(b) > MaxSecretBytes {
			return nil, fmt.Errorf("%s.file: token %q: %s is over %d bytes", path, t.Name, t.File, MaxSecretBytes)
		}
	default:
		return nil, fmt.Errorf("%s: token %q has no source (set env or file)", path, t.Name)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < MinAdminTokenBytes {
		// The length is not the value; saying it helps the operator fix a truncated secret.
		return nil, fmt.Errorf("%s: token %q is %d bytes, want at least %d (e.g. openssl rand -hex 32)",
			path, t.Name, len(b), MinAdminTokenBytes)
	}
	return b, nil
}

func (a *Admin) applyDefaults() { setStr(&a.Reads, AdminReadsOpen) }

func (v *validator) admin() {
	a := &v.c.Admin
	if a.Listen != "" {
		if p, ok := a.UnixPath(); ok {
			v.check("admin.listen", checkUnixPath(p))
		} else {
			v.check("admin.listen", checkListenAddr(a.Listen))
		}
		if !a.Local() && len(a.Tokens) == 0 {
			v.add("admin.listen", "%q is not a loopback address or unix socket, and admin.tokens is empty: "+
				"anyone who reaches it could change routing; add a token or listen on 127.0.0.1", truncate(a.Listen, 128))
		}
	}
	names := map[string]int{}
	for i, t := range a.Tokens {
		p := fmt.Sprintf("admin.tokens[%d]", i)
		if err := checkName(t.Name); err != nil {
			v.check(p+".name", err)
		} else if j, dup := names[t.Name]; dup {
			v.add(p+".name", "%q is already the name of admin.tokens[%d]", t.Name, j)
		} else {
			names[t.Name] = i
		}
		switch {
		case t.Env == "" && t.File == "":
			v.add(p, "set one of env, file")
		case t.Env != "" && t.File != "":
			v.add(p, "set only one of env, file")
		case t.Env != "":
			v.check(p+".env", checkEnvName(t.Env))
		case !filepath.IsAbs(t.File):
			v.add(p+".file", "%q is not an absolute path", truncate(t.File, 128))
		}
	}
	for i, h := range a.Hosts {
		p := fmt.Sprintf("admin.hosts[%d]", i)
		if h == "" {
			v.add(p, "must not be empty")
		} else if strings.ContainsAny(h, ":/") && !isIPv6(h) {
			v.add(p, "%q: give a host name or IP, without scheme or port", truncate(h, 128))
		} else if err := checkHost(h); err != nil {
			v.check(p, err)
		}
	}
	v.oneOf("admin.reads", a.Reads, AdminReadsOpen, AdminReadsToken)
	if h := v.c.Health.Listen; h != "" {
		v.check("health.listen", checkListenAddr(h))
	}
}

func isIPv6(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Is6()
}

// checkUnixPath accepts an absolute socket path that fits in sockaddr_un.
func checkUnixPath(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return fmt.Errorf("%q: the socket path must be absolute (unix:/run/mgw/admin.sock)", truncate(p, 128))
	case len(p) > 107:
		return fmt.Errorf("%q: the socket path is longer than 107 bytes", truncate(p, 128))
	}
	return nil
}

// checkEnvName accepts a POSIX environment variable name.
func checkEnvName(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("%q is not an environment variable name", truncate(s, 64))
		}
	}
	return nil
}
