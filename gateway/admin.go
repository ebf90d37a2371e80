package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/google/gops/agent"

	"github.com/mgw-project/mgw/gateway/route"
)

// startAdmin serves the admin API on its own ordinary net/http server: it is for
// operators and the load harness, not the hot path.
func (g *Gateway) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin.listen %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		g.set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if g.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, g.Stats()) })
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, g.Config().Redacted()) })
	mux.HandleFunc("GET /v1/clusters", func(w http.ResponseWriter, _ *http.Request) {
		d := g.dispatch.Load()
		out := map[string]any{}
		for name, c := range d.clusters {
			out[name] = c.Hosts()
		}
		writeJSON(w, out)
	})
	rh := route.AdminHandler(g.router)
	mux.Handle("/v1/routes", rh)
	mux.Handle("/v1/routes/", rh)
	mux.Handle("/v1/switches", rh)
	mux.Handle("/v1/switches/", rh)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	g.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.adminAddr = ln.Addr()
	go g.admin.Serve(ln)
	g.log.Info("admin listening", "addr", ln.Addr().String(), "endpoints", "/metrics /v1/stats /v1/config /v1/routes /v1/switches /healthz /debug/pprof/")
	return nil
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
	}
	if g.reqPool != nil {
		s.Pool.RequestRunning, s.Pool.RequestCap = g.reqPool.Running(), g.reqPool.Cap()
	}
	if g.adm != nil {
		s.Admission = g.adm.stats()
	}
	return s
}

func startGops() error { return agent.Listen(agent.Options{ShutdownCleanup: false}) }
