package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// Reasons an admin request is refused: the values of mgw_admin_refused_total{reason}.
const (
	refusedHost     = "host"      // Host is not a name of this listener (DNS rebinding)
	refusedOrigin   = "origin"    // a browser's cross-origin request
	refusedNoToken  = "no_token"  // the call needs a token and has none
	refusedBadToken = "bad_token" // the token matches none configured
	refusedReadOnly = "read_only" // a read-only token tried a change
	refusedNotLocal = "not_local" // no tokens configured and the peer is not this machine
)

var refusedReasons = []string{refusedHost, refusedOrigin, refusedNoToken, refusedBadToken, refusedReadOnly, refusedNotLocal}

// maxAuditBody bounds how much of a change's body is read for the audit line; the route
// handlers refuse bodies over 1 MiB themselves.
const maxAuditBody = 1 << 20

// maxAuditShown bounds the change as written in the log line.
const maxAuditShown = 2048

// adminKey is one configured token, kept only as its SHA-256: comparing digests of equal
// length in constant time leaks neither the token nor its length.
type adminKey struct {
	name     string
	digest   [sha256.Size]byte
	readOnly bool
}

// adminPolicy is what the guard checks a request against. It is immutable; a reload
// builds a new one and swaps it in whole, so token rotation needs no restart.
type adminPolicy struct {
	keys       []adminKey
	hosts      map[string]bool // lowercased names Host and Origin may carry, besides localhost and the local IP
	tokenReads bool            // reads: token
}

// newAdminPolicy resolves the tokens (from the environment or files) and the accepted
// host names. Errors name the config field, never a token's value.
func newAdminPolicy(a *config.Admin, getenv func(string) string) (*adminPolicy, error) {
	p := &adminPolicy{hosts: map[string]bool{"localhost": true}, tokenReads: a.Reads == config.AdminReadsToken}
	for i := range a.Tokens {
		t := &a.Tokens[i]
		v, err := t.Resolve(fmt.Sprintf("admin.tokens[%d]", i), getenv)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, adminKey{name: t.Name, digest: sha256.Sum256(v), readOnly: t.ReadOnly})
		clear(v)
	}
	for _, h := range a.Hosts {
		p.hosts[normHost(h)] = true
	}
	if host, _, err := net.SplitHostPort(a.Listen); err == nil && host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
			p.hosts[normHost(host)] = true
		}
	}
	return p, nil
}

func normHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return ip.Unmap().String()
	}
	return h
}

// hostAllowed reports whether hostport (a Host header or an Origin's host) names this
// listener: localhost, a configured name, or the IP the client connected to (any loopback
// IP on a unix socket). A DNS-rebinding page carries its own name, which is none of
// these. The port is not compared: a tunnel (ssh -L, kubectl port-forward) may change it
// and it says nothing about the name.
func (p *adminPolicy) hostAllowed(hostport string, local net.Addr) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normHost(host)
	if host == "" {
		return false
	}
	if p.hosts[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	switch la := local.(type) {
	case *net.TCPAddr:
		if lip, ok := netip.AddrFromSlice(la.IP); ok && lip.Unmap() == ip.Unmap() {
			return true
		}
	case *net.UnixAddr:
		// A unix socket has no IP of its own; a tunnel to it (ssh -L 9901:/run/mgw/admin.sock)
		// arrives with the loopback address its client dialled.
		return ip.Unmap().IsLoopback()
	}
	return false
}

// match returns the key whose token is tok. Every key is compared, whichever matches, so
// the time taken says nothing about which one did.
func (p *adminPolicy) match(tok string) (adminKey, bool) {
	d := sha256.Sum256([]byte(tok))
	found := -1
	for i := range p.keys {
		if subtle.ConstantTimeCompare(d[:], p.keys[i].digest[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return adminKey{}, false
	}
	return p.keys[found], true
}

// adminGuard stands in front of the admin API: it checks Host and Origin, then the
// credential a call needs, writes the audit line of each accepted change, and counts what
// it refuses.
type adminGuard struct {
	next    http.Handler
	log     *slog.Logger
	policy  atomic.Pointer[adminPolicy]
	refused map[string]*metrics.Counter
	set     *metrics.Set
}

func newAdminGuard(next http.Handler, p *adminPolicy, log *slog.Logger, set *metrics.Set) *adminGuard {
	g := &adminGuard{next: next, log: log, set: set, refused: map[string]*metrics.Counter{}}
	g.policy.Store(p)
	for _, r := range refusedReasons {
		g.refused[r] = set.GetOrCreateCounter(fmt.Sprintf(`mgw_admin_refused_total{reason=%q}`, r))
	}
	return g
}

// openRead reports whether a GET of path is a health or metrics read, which needs no
// token unless admin.reads is "token". Everything else (routes, clusters, config, pprof,
// and any path added later) needs one: the list is of what is open, not what is closed.
func openRead(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics", "/v1/stats":
		return true
	}
	return false
}

func (g *adminGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := g.policy.Load()
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if r.Host != "" && !p.hostAllowed(r.Host, local) {
		g.refuse(w, http.StatusMisdirectedRequest, refusedHost,
			fmt.Sprintf("Host %q is not a name of this admin listener (localhost, its address, or admin.hosts)", trunc(r.Host, 100)))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !p.originAllowed(o, local) {
		g.refuse(w, http.StatusForbidden, refusedOrigin,
			fmt.Sprintf("Origin %q: the admin API does not answer other sites' pages", trunc(o, 100)))
		return
	}
	change := r.Method != http.MethodGet && r.Method != http.MethodHead
	if !change && !p.tokenReads && openRead(r.URL.Path) {
		g.next.ServeHTTP(w, r)
		return
	}
	who, ok := g.authorize(w, r, p, change, local)
	if !ok {
		return
	}
	if !change {
		if r.URL.Path == "/v1/config" || strings.HasPrefix(r.URL.Path, "/debug/") {
			g.log.Info("admin access", append(who, "endpoint", r.URL.Path, "remote", r.RemoteAddr)...)
		}
		g.next.ServeHTTP(w, r)
		return
	}
	g.serveChange(w, r, who)
}

// originAllowed: a browser names the page's origin; it must be this listener itself (the
// admin UI of a later version), never another site. "null" (sandboxed pages, file://) is
// another site.
func (p *adminPolicy) originAllowed(origin string, local net.Addr) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return p.hostAllowed(u.Host, local)
}

// authorize checks the call's credential and returns the log attributes naming who made
// it. With tokens configured it needs one (a change needs one that is not read-only);
// with none configured the listener is loopback or a unix socket (config validation), and
// the peer must be this machine.
func (g *adminGuard) authorize(w http.ResponseWriter, r *http.Request, p *adminPolicy, change bool, local net.Addr) ([]any, bool) {
	if len(p.keys) == 0 {
		if _, unix := local.(*net.UnixAddr); unix {
			return []any{"auth", "unix"}, true
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Unmap().IsLoopback() {
			return []any{"auth", "loopback"}, true
		}
		g.refuse(w, http.StatusForbidden, refusedNotLocal, "no admin.tokens are configured, so only this machine may call this")
		return nil, false
	}
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") || strings.TrimSpace(h[7:]) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mgw-admin"`)
		g.refuse(w, http.StatusUnauthorized, refusedNoToken, "this call needs Authorization: Bearer <token> (admin.tokens; mgw reads MGW_ADMIN_TOKEN)")
		return nil, false
	}
	k, ok := p.match(strings.TrimSpace(h[7:]))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mgw-admin", error="invalid_token"`)
		g.refuse(w, http.StatusUnauthorized, refusedBadToken, "the bearer token matches no admin.tokens entry")
		return nil, false
	}
	if change && k.readOnly {
		g.refuse(w, http.StatusForbidden, refusedReadOnly, fmt.Sprintf("token %q is read_only", k.name))
		return nil, false
	}
	return []any{"auth", "token", "token", k.name}, true
}

// serveChange runs a change and, when it was applied (2xx), logs it once: who, the
// endpoint, and the change as sent. The router logs the old and new values it caused.
func (g *adminGuard) serveChange(w http.ResponseWriter, r *http.Request, who []any) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAuditBody+1))
	if err != nil {
		writeAdminErr(w, http.StatusBadRequest, fmt.Sprintf("reading the body: %v", err))
		return
	}
	// The handler sees the whole body, the part read here and whatever was left.
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	g.next.ServeHTTP(sw, r)
	attrs := append(who, "method", r.Method, "endpoint", r.URL.Path, "status", sw.status)
	if sw.status/100 != 2 {
		// No such endpoint, or not this method (POST /healthz): nothing that changes
		// anything was asked for; like a refused call, counted nowhere as a change.
		if sw.status != http.StatusNotFound && sw.status != http.StatusMethodNotAllowed {
			g.log.Info("admin change not applied", attrs...)
		}
		return
	}
	g.set.GetOrCreateCounter(fmt.Sprintf(`mgw_admin_changes_total{endpoint=%q}`, endpointLabel(r.URL.Path))).Inc()
	if r.URL.Path == "/v1/push" {
		// A publish is traffic, not a change of the gateway: at a publisher's rate an
		// info line each would flood the log, and the bodies are the apps' data.
		g.log.Debug("admin push", attrs...)
		return
	}
	g.log.Info("admin change", append(attrs, "change", auditBody(body), "remote", r.RemoteAddr)...)
}

// endpointLabel keeps the metric's label set small: the first two path segments
// (/v1/routes, /v1/switches), not the route keys.
func endpointLabel(path string) string {
	parts := strings.SplitN(path, "/", 4)
	if len(parts) >= 3 {
		return "/" + parts[1] + "/" + parts[2]
	}
	return path
}

// auditBody renders a change body for the log: compact JSON when it is JSON, else a
// quoted string, cut at maxAuditShown bytes.
func auditBody(b []byte) string {
	var buf bytes.Buffer
	s := string(b)
	if json.Compact(&buf, b) == nil {
		s = buf.String()
	}
	if len(s) > maxAuditShown {
		s = fmt.Sprintf("%s... (%d bytes)", s[:maxAuditShown], len(b))
	}
	return s
}

func (g *adminGuard) refuse(w http.ResponseWriter, status int, reason, msg string) {
	g.refused[reason].Inc()
	writeAdminErr(w, status, "admin: "+msg)
}

// writeAdminErr answers in the route handler's shape, {"error": "..."}.
func writeAdminErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)                        // "<token>" reads better than "\u003ctoken\u003e" in a terminal
	_ = enc.Encode(map[string]string{"error": msg}) // the client went away; nothing left to tell it
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
