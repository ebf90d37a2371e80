package gateway

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/google/gops/agent"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/gateway/route"
)

// startAdmin serves the admin API on its own ordinary net/http server: it is for
// operators and the load harness, not the hot path. Every request passes the admin guard
// (admin_guard.go) first.
func (g *Gateway) startAdmin(cfg *config.Admin) error {
	ln, err := g.inheritedListener("@admin", cfg.Listen)
	var addr net.Addr
	if ln != nil {
		addr = ln.Addr()
	} else if err == nil {
		ln, addr, err = listenAdmin(cfg.Listen)
	}
	if err != nil {
		return fmt.Errorf("admin.listen %q: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	g.probes(mux)
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, g.Stats()) })
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, g.configView()) })
	mux.HandleFunc("GET /v1/clusters", func(w http.ResponseWriter, _ *http.Request) {
		d := g.snap.Load()
		out := map[string]any{}
		for name, c := range d.clusters {
			out[name] = c.Hosts()
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("POST /v1/push", g.push.servePublish)
	rh := route.AdminHandler(g.router)
	mux.Handle("/v1/routes", rh)
	mux.Handle("/v1/routes/", rh)
	mux.Handle("/v1/switches", rh)
	mux.Handle("/v1/switches/", rh)
	mux.HandleFunc("POST /v1/upgrade", g.serveUpgrade)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	allowJSON(mux, map[string]string{"/v1/stats": "GET, HEAD", "/v1/config": "GET, HEAD",
		"/v1/clusters": "GET, HEAD", "/v1/push": "POST", "/v1/upgrade": "POST"})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminErr(w, http.StatusNotFound, fmt.Sprintf("no such admin path %q", trunc(r.URL.Path, 100)))
	})
	g.adminGuard = newAdminGuard(mux, g.adminPolicy, g.log, g.set)
	g.admin = &http.Server{Handler: g.adminGuard, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	g.adminAddr, g.adminLn = addr, ln
	go g.admin.Serve(ln)
	tokens := make([]string, len(cfg.Tokens))
	for i, t := range cfg.Tokens {
		tokens[i] = t.Name
	}
	g.log.Info("admin listening", "addr", listenName(addr), "tokens", tokens, "reads", cfg.Reads,
		"endpoints", "/metrics /v1/stats /v1/config /v1/routes /v1/switches /v1/push /v1/upgrade /healthz /readyz /debug/pprof/")
	return nil
}

// allowJSON answers a method a path does not take (allow: the methods it does, by path)
// with 405, Allow and a JSON error, where ServeMux would answer plain text: the admin API
// is JSON in and out, errors {"error": ...} (docs/routing.md).
func allowJSON(mux *http.ServeMux, allow map[string]string) {
	for path, methods := range allow {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeAdminErr(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s: %s takes %s", r.Method, path, methods))
		})
	}
}

// startHealth serves the probe listener: /healthz, /readyz and /metrics, nothing else,
// no credential. It reveals nothing an operator would hide and changes nothing, so it may
// listen where kubelet and Prometheus reach while the admin API stays on loopback.
func (g *Gateway) startHealth(addr string) error {
	ln, err := g.inheritedListener("@health", addr)
	if ln == nil && err == nil {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("health.listen %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	g.probes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdminErr(w, http.StatusNotFound, fmt.Sprintf("the health listener serves /healthz, /readyz and /metrics only, not %q", trunc(r.URL.Path, 100)))
	})
	g.health = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)}
	g.healthAddr, g.healthLn = ln.Addr(), ln
	go g.health.Serve(ln)
	g.log.Info("health listening", "addr", ln.Addr().String(), "endpoints", "/healthz /readyz /metrics")
	return nil
}

// probes mounts what both the admin and the health listener serve.
func (g *Gateway) probes(mux *http.ServeMux) {
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		g.set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	// healthz: the process is alive and not shutting down.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if g.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// readyz: every listener is bound and the gateway takes traffic; a load balancer or
	// Service sends none before, and none once draining starts.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case g.draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !g.ready.Load():
			http.Error(w, "starting", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	allowJSON(mux, map[string]string{"/healthz": "GET, HEAD", "/readyz": "GET, HEAD", "/metrics": "GET, HEAD"})
}

// listenAdmin listens on host:port or, for unix:/path, on a socket only its owner may
// use. The socket is bound in a private directory, made 0600 and then renamed into place,
// so it is never reachable with looser permissions, whatever the umask.
func listenAdmin(addr string) (net.Listener, net.Addr, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		return ln, ln.Addr(), nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		// A socket left by a process that died answers nothing; one that answers is live.
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, nil, fmt.Errorf("removing the stale socket: %w", err)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".mgw-admin-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, nil, err
	}
	ua := &net.UnixAddr{Name: path, Net: "unix"}
	return &unixListener{Listener: ln, addr: ua}, ua, nil
}

// unixListener reports the socket's final path and removes it on close (the listener
// itself only knows the path it was bound at).
type unixListener struct {
	net.Listener
	addr *net.UnixAddr
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	os.Remove(l.addr.Name)
	return err
}

// listenName writes a listener address as the config would: host:port or unix:/path.
func listenName(a net.Addr) string {
	if ua, ok := a.(*net.UnixAddr); ok {
		return "unix:" + ua.Name
	}
	return a.String()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Stats is the snapshot GET /v1/stats serves.
func (g *Gateway) Stats() Stats {
	s := Stats{
		Engine: g.Config().Engine, PID: pidSelf(), UptimeSeconds: uptime(g.start),
		Connections: map[string]int64{}, Goroutines: runtime.NumGoroutine(),
		RSSBytes: processRSS(), HeapInuseBytes: heapInuse(), CPUSeconds: processCPU(),
		RequestsTotal: g.requests.Load(), InFlight: g.inFlight.Load(), OpenFilesLimit: openFilesLimit(),
		InheritedConnections: g.inherited.Load(),
	}
	g.mu.Lock()
	for _, l := range g.listeners {
		n := int64(l.m.open.Get())
		s.Connections[l.cfg.Name] = n
		s.ConnectionsTotal += n
	}
	eng := g.engine
	g.mu.Unlock()
	if eng != nil {
		es := eng.Stats()
		s.Pool = PoolStats{Running: es.PoolRunning, Waiting: es.PoolWaiting, Cap: es.PoolCap}
		s.QueuedWriteBytes = es.QueuedBytes
		s.PendingReadBytes = es.PendingBytes
	}
	if g.reqPool != nil {
		s.Pool.RequestRunning, s.Pool.RequestCap = g.reqPool.Running(), g.reqPool.Cap()
	}
	if g.adm != nil {
		s.Admission = g.adm.stats()
	}
	s.Push = g.push.stats()
	return s
}

func startGops() error { return agent.Listen(agent.Options{ShutdownCleanup: false}) }
