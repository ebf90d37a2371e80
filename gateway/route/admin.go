package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/jsonerr"
)

// maxAdminBody bounds a PUT body; a route's split or the switches are small.
const maxAdminBody = 1 << 20

// AdminHandler serves the routing part of the admin API under /v1/routes and
// /v1/switches (JSON in and out; errors are {"error": "..."} with 400, 404 or 405; in a fleet,
// 409 when the change conflicts with one made elsewhere and 503 when etcd is unreachable):
//
//	GET /v1/routes                      every route with its effective split
//	GET /v1/routes/{api}                one route (split, sticky, fallback, retry, force, effective)
//	PUT /v1/routes/{api}                change split, sticky, fallback, retry: RouteUpdate
//	                                    ({api} exactly the route's key)
//	GET /v1/routes/{api}/effective?app= the split in force here and what decided it
//	GET /v1/routes/{api}/explain?device=&user=&app=&client=&header.NAME=
//	                                    where that call would go, and why
//	GET|PUT /v1/switches                all switches (config.Switches)
//	GET|PUT /v1/switches/mesh_only_apps ["app", ...]
//	GET|PUT /v1/switches/zones          {"zone": {"tag": percent}}
//	GET|PUT /v1/switches/labels         {"key" or "key=value": {"tag": percent}}
//
// {api} is one path segment, percent-escaped (url.PathEscape): `*` and `.` may appear
// as they are; a path route's key is written with its slashes escaped, `/api/v2/` as
// `%2Fapi%2Fv2%2F`. For GET, {api} may also be an operation type or a
// request path, matched as a request would be. Every PUT answers with the new effective
// split(s). Mount it on the admin listener as is; it ignores other paths (404).
func AdminHandler(r *Router) http.Handler {
	a := &admin{r: r}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/routes", a.routes)
	mux.HandleFunc("/v1/routes/{api}", a.route)
	mux.HandleFunc("/v1/routes/{api}/effective", a.effective)
	mux.HandleFunc("/v1/routes/{api}/explain", a.explain)
	mux.HandleFunc("/v1/switches", a.switches)
	mux.HandleFunc("/v1/switches/{kind}", a.switchKind)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		if h := a.rootRoute(req); h != nil {
			h(w, req)
			return
		}
		writeErr(w, http.StatusNotFound, fmt.Errorf("no such admin path %q", req.URL.Path))
	})
	return mux
}

// rootRoute serves the root path route, /v1/routes/%2F, which ServeMux does not match to
// {api}: its one segment unescapes to the empty path between two slashes. nil when req is
// not about it.
func (a *admin) rootRoute(req *http.Request) http.HandlerFunc {
	rest, ok := strings.CutPrefix(req.URL.EscapedPath(), "/v1/routes/")
	if !ok {
		return nil
	}
	seg, tail, _ := strings.Cut(rest, "/")
	if api, err := url.PathUnescape(seg); err != nil || api != "/" {
		return nil
	}
	req.SetPathValue("api", "/")
	switch tail {
	case "":
		return a.route
	case "effective":
		return a.effective
	case "explain":
		return a.explain
	}
	return nil
}

type admin struct{ r *Router }

// RouteView is one route as the admin API shows it.
type RouteView struct {
	Route     string         `json:"route"`
	Kind      string         `json:"kind"` // "api" or "path"
	Split     map[string]int `json:"split"`
	Sticky    string         `json:"sticky"`
	Fallback  []string       `json:"fallback"`
	Retry     bool           `json:"retry"`
	Force     []config.Force `json:"force,omitempty"`
	Effective Effective      `json:"effective"`
}

func view(t *Table, rt *Route) RouteView {
	e := t.Effective(rt, "")
	kind := "api"
	if rt.IsPath {
		kind = "path"
	}
	return RouteView{Route: rt.Key, Kind: kind, Split: rt.cfg.Split, Sticky: e.Sticky,
		Fallback: e.Fallback, Retry: rt.cfg.Retry, Force: rt.cfg.Force, Effective: e}
}

func (a *admin) routes(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet) {
		return
	}
	t := a.r.Load()
	out := make([]RouteView, 0, len(t.routes))
	for _, rt := range t.routes {
		out = append(out, view(t, rt))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *admin) route(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet, http.MethodPut) {
		return
	}
	key := req.PathValue("api")
	if isRead(req) {
		t := a.r.Load()
		rt := lookup(t, key)
		if rt == nil {
			writeErr(w, http.StatusNotFound, fmt.Errorf("route %q: %w", key, ErrNoSuchRoute))
			return
		}
		writeJSON(w, http.StatusOK, view(t, rt))
		return
	}
	var u RouteUpdate
	if !readJSON(w, req, &u) {
		return
	}
	if _, err := a.r.UpdateRoute(key, u); err != nil {
		writeChangeErr(w, err)
		return
	}
	t := a.r.Load()
	writeJSON(w, http.StatusOK, view(t, t.Route(key)))
}

// lookup finds a route by its key, else as a request for that operation or path would.
func lookup(t *Table, s string) *Route {
	if rt := t.Route(s); rt != nil {
		return rt
	}
	if strings.HasPrefix(s, "/") {
		return t.MatchPath(s)
	}
	return t.Match(s)
}

func (a *admin) effective(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet) {
		return
	}
	t := a.r.Load()
	key := req.PathValue("api")
	rt := lookup(t, key)
	if rt == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("route %q: %w", key, ErrNoSuchRoute))
		return
	}
	writeJSON(w, http.StatusOK, t.Effective(rt, req.URL.Query().Get("app")))
}

func (a *admin) explain(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet) {
		return
	}
	t := a.r.Load()
	key := req.PathValue("api")
	rt := lookup(t, key)
	if rt == nil {
		writeErr(w, http.StatusNotFound, fmt.Errorf("route %q: %w", key, ErrNoSuchRoute))
		return
	}
	creq, err := explainRequest(key, req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, t.Explain(rt, creq))
}

// explainRequest builds the request to explain from the query: device, user, app, client
// (an IP or IP:port) and header.NAME=value.
func explainRequest(op string, req *http.Request) (*codec.Request, error) {
	q := req.URL.Query()
	creq := &codec.Request{Protocol: codec.MMTP, Operation: op}
	if strings.HasPrefix(op, "/") {
		creq.Protocol, creq.Operation, creq.Target, creq.Method = codec.HTTP1, "", op, http.MethodGet
	}
	for param, hdr := range map[string]string{"device": "device-id", "user": "user-id", "app": "app-id"} {
		if v := q.Get(param); v != "" {
			creq.Header = append(creq.Header, codec.Field{Key: hdr, Value: v})
		}
	}
	if c := q.Get("client"); c != "" {
		ap, err := netip.ParseAddrPort(c)
		if err != nil {
			addr, err2 := netip.ParseAddr(c)
			if err2 != nil {
				return nil, fmt.Errorf("client: %q is not an IP address or IP:port", c)
			}
			ap = netip.AddrPortFrom(addr, 0)
		}
		creq.Conn.ClientAddr = ap
	}
	for k, vs := range q {
		if name, ok := strings.CutPrefix(k, "header."); ok && name != "" && len(vs) > 0 {
			creq.Header = append(creq.Header, codec.Field{Key: strings.ToLower(name), Value: vs[0]})
		}
	}
	return creq, nil
}

// SwitchesView is the switches with this instance's zone and labels, which decide which
// zone and label switch apply here.
type SwitchesView struct {
	config.Switches
	Instance config.Instance `json:"instance"`
}

// SwitchChange is the answer to a switch PUT: the switches now in force and every
// route's new effective split.
type SwitchChange struct {
	Switches  SwitchesView `json:"switches"`
	Effective []Effective  `json:"effective"`
}

func switchesView(t *Table) SwitchesView {
	s := t.cfg.Switches.Clone()
	if s.MeshOnlyApps == nil {
		s.MeshOnlyApps = []string{}
	}
	if s.Zones == nil {
		s.Zones = map[string]map[string]int{}
	}
	if s.Labels == nil {
		s.Labels = map[string]map[string]int{}
	}
	inst := t.cfg.Instance
	if inst.Labels == nil {
		inst.Labels = map[string]string{}
	}
	return SwitchesView{Switches: s, Instance: inst}
}

func (a *admin) switches(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet, http.MethodPut) {
		return
	}
	if isRead(req) {
		writeJSON(w, http.StatusOK, switchesView(a.r.Load()))
		return
	}
	var sw config.Switches
	if !readJSON(w, req, &sw) {
		return
	}
	effs, err := a.r.SetSwitches(sw)
	a.answerSwitch(w, effs, err)
}

func (a *admin) switchKind(w http.ResponseWriter, req *http.Request) {
	if !allow(w, req, http.MethodGet, http.MethodPut) {
		return
	}
	kind := req.PathValue("kind")
	sv := switchesView(a.r.Load())
	var (
		effs []Effective
		err  error
	)
	switch kind {
	case "mesh_only_apps":
		if isRead(req) {
			writeJSON(w, http.StatusOK, sv.MeshOnlyApps)
			return
		}
		var apps []string
		if !readJSON(w, req, &apps) {
			return
		}
		effs, err = a.r.SetMeshOnlyApps(apps)
	case "zones", "labels":
		if isRead(req) {
			m := sv.Zones
			if kind == "labels" {
				m = sv.Labels
			}
			writeJSON(w, http.StatusOK, m)
			return
		}
		var m map[string]map[string]int
		if !readJSON(w, req, &m) {
			return
		}
		if kind == "zones" {
			effs, err = a.r.SetZoneSwitches(m)
		} else {
			effs, err = a.r.SetLabelSwitches(m)
		}
	default:
		writeErr(w, http.StatusNotFound, fmt.Errorf("switch kind %q: want mesh_only_apps, zones or labels", kind))
		return
	}
	a.answerSwitch(w, effs, err)
}

func (a *admin) answerSwitch(w http.ResponseWriter, effs []Effective, err error) {
	if err != nil {
		writeChangeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, SwitchChange{Switches: switchesView(a.r.Load()), Effective: effs})
}

// isRead says req only reads (GET or HEAD).
func isRead(req *http.Request) bool {
	return req.Method == http.MethodGet || req.Method == http.MethodHead
}

// allow answers 405 with Allow unless req's method is one of methods; HEAD goes where GET
// does (the server leaves out the body).
func allow(w http.ResponseWriter, req *http.Request, methods ...string) bool {
	for _, m := range methods {
		if req.Method == m || m == http.MethodGet && req.Method == http.MethodHead {
			return true
		}
	}
	if methods[0] == http.MethodGet {
		methods = append([]string{http.MethodGet, http.MethodHead}, methods[1:]...)
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeErr(w, http.StatusMethodNotAllowed, fmt.Errorf("method %s: want %s", req.Method, strings.Join(methods, " or ")))
	return false
}

// readJSON decodes a bounded body strictly (unknown fields are errors); on failure it has
// already answered 400.
func readJSON(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("body: %w", jsonerr.Describe(err)))
		return false
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		writeErr(w, http.StatusBadRequest, errors.New("body: more than one JSON value"))
		return false
	}
	return true
}

func writeChangeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNoSuchRoute):
		writeErr(w, http.StatusNotFound, err)
	case errors.Is(err, ErrConflict):
		writeErr(w, http.StatusConflict, err)
	case errors.Is(err, ErrUnavailable):
		writeErr(w, http.StatusServiceUnavailable, err)
	default:
		writeErr(w, http.StatusBadRequest, err)
	}
}

func writeErr(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}
