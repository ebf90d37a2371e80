package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mgw-project/mgw/gateway/route"
)

const routeUsage = `Usage:
  mgw route list    [--admin ADDR]
  mgw route get     --api X [--app A] [--admin ADDR]
  mgw route explain --api X [--device D] [--user U] [--app A] [--client IP] [--header NAME=VALUE] [--admin ADDR]
  mgw route set     --api X [--split c1=90,c2=10] [--sticky device|user|app|client|none]
                    [--fallback c1,c2] [--retry true|false] [--admin ADDR]

X is an operation type (alipay.trade.pay), a route pattern (alipay.*, *) or, for a plain
HTTP route, its path (/api/); get and explain find the route a call to X would take, set
needs the route's own key. ADDR is the gateway's admin listener: host:port, a URL, or
unix:/path (default 127.0.0.1:9901). When the gateway has admin.tokens, set
MGW_ADMIN_TOKEN to one of them; it is sent as a bearer token and never printed.
`

// runRoute is `mgw route ...`: it talks to a running gateway's admin API and prints a
// human-readable answer. It returns the exit code: 0 done, 1 the gateway refused or could
// not be reached, 2 bad usage.
func runRoute(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, routeUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "get", "set", "explain":
	default:
		fmt.Fprintf(stderr, "mgw route: unknown subcommand %q\n\n%s", sub, routeUsage)
		return 2
	}
	fs := flag.NewFlagSet("mgw route "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, routeUsage) }
	admin := fs.String("admin", "127.0.0.1:9901", "admin listener address (host:port, URL or unix:/path)")
	api := fs.String("api", "", "operation type, route pattern or path")
	app := fs.String("app", "", "calling app id")
	device := fs.String("device", "", "device id (explain)")
	user := fs.String("user", "", "user id (explain)")
	client := fs.String("client", "", "client IP or IP:port (explain)")
	var headers routeHeaderFlag
	fs.Var(&headers, "header", "request header NAME=VALUE (explain; repeatable)")
	split := fs.String("split", "", "new split: cluster=weight,... (set)")
	sticky := fs.String("sticky", "", "new sticky key kind (set)")
	fallback := fs.String("fallback", "", "new fallback order: c1,c2 (set; \"-\" clears it)")
	retry := fs.String("retry", "", "allow resending a sent request to a fallback: true|false (set)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mgw route %s: unexpected argument %q\n", sub, fs.Arg(0))
		return 2
	}
	c := newAdminClient(*admin, os.Getenv("MGW_ADMIN_TOKEN"))
	if sub != "list" && *api == "" {
		fmt.Fprintf(stderr, "mgw route %s: --api is required\n", sub)
		return 2
	}
	seg := "/v1/routes/" + url.PathEscape(*api)
	switch sub {
	case "list":
		var views []route.RouteView
		if err := c.do(http.MethodGet, "/v1/routes", nil, &views); err != nil {
			return routeFail(stderr, sub, err)
		}
		for _, v := range views {
			fmt.Fprintf(stdout, "%-32s %s\n", v.Route, routeEffLine(v.Effective))
		}
	case "get":
		var v route.RouteView
		if err := c.do(http.MethodGet, seg, nil, &v); err != nil {
			return routeFail(stderr, sub, err)
		}
		if *app != "" {
			q := url.Values{"app": {*app}}
			if err := c.do(http.MethodGet, seg+"/effective?"+q.Encode(), nil, &v.Effective); err != nil {
				return routeFail(stderr, sub, err)
			}
		}
		routePrintView(stdout, v, *app)
	case "explain":
		q := url.Values{}
		for k, val := range map[string]string{"device": *device, "user": *user, "app": *app, "client": *client} {
			if val != "" {
				q.Set(k, val)
			}
		}
		for _, h := range headers {
			q.Set("header."+h[0], h[1])
		}
		var ex route.Explanation
		if err := c.do(http.MethodGet, seg+"/explain?"+q.Encode(), nil, &ex); err != nil {
			return routeFail(stderr, sub, err)
		}
		routePrintExplain(stdout, *api, ex)
	case "set":
		var u route.RouteUpdate
		var err error
		if *split != "" {
			if u.Split, err = routeParseSplit(*split); err != nil {
				fmt.Fprintf(stderr, "mgw route set: --split: %v\n", err)
				return 2
			}
		}
		if *sticky != "" {
			u.Sticky = sticky
		}
		if *fallback != "" {
			fb := []string{}
			if *fallback != "-" {
				fb = strings.Split(*fallback, ",")
			}
			u.Fallback = &fb
		}
		if *retry != "" {
			b, err := strconv.ParseBool(*retry)
			if err != nil {
				fmt.Fprintf(stderr, "mgw route set: --retry: %q is not true or false\n", *retry)
				return 2
			}
			u.Retry = &b
		}
		if u.Split == nil && u.Sticky == nil && u.Fallback == nil && u.Retry == nil {
			fmt.Fprintln(stderr, "mgw route set: nothing to change; give --split, --sticky, --fallback or --retry")
			return 2
		}
		var v route.RouteView
		if err := c.do(http.MethodPut, seg, u, &v); err != nil {
			return routeFail(stderr, sub, err)
		}
		fmt.Fprintf(stdout, "changed %s\n", v.Route)
		routePrintView(stdout, v, "")
	default:
		fmt.Fprintf(stderr, "mgw route: unknown subcommand %q\n\n%s", sub, routeUsage)
		return 2
	}
	return 0
}

func routeFail(stderr io.Writer, sub string, err error) int {
	fmt.Fprintf(stderr, "mgw route %s: %v\n", sub, err)
	return 1
}

// adminClient calls a gateway's admin API, for every command that does.
type adminClient struct {
	base  string
	http  *http.Client
	token string // MGW_ADMIN_TOKEN; "" sends none
}

// newAdminClient accepts "host:port", a URL, or "unix:/path" (then the requests go to
// http://localhost over the socket, a Host the gateway accepts).
func newAdminClient(admin, token string) adminClient {
	c := adminClient{http: &http.Client{Timeout: 10 * time.Second}, token: token}
	if path, ok := strings.CutPrefix(admin, "unix:"); ok {
		c.base = "http://localhost"
		c.http.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return c
	}
	if !strings.Contains(admin, "://") {
		admin = "http://" + admin
	}
	c.base = strings.TrimRight(admin, "/")
	return c
}

// do sends one admin request; a non-2xx answer becomes an error carrying the gateway's
// own {"error": ...} text.
func (c adminClient) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: reading answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
				return fmt.Errorf("%s (%d; MGW_ADMIN_TOKEN is not set)", e.Error, resp.StatusCode)
			}
			return fmt.Errorf("%s (%d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("admin API: %s: %.200s", resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: decoding answer: %w", err)
	}
	return nil
}

// routeParseSplit reads "a=90,b=10".
func routeParseSplit(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not cluster=weight", part)
		}
		n, err := strconv.Atoi(w)
		if err != nil {
			return nil, fmt.Errorf("%q: weight %q is not an integer", part, w)
		}
		m[name] = n
	}
	return m, nil
}

type routeHeaderFlag [][2]string

func (h *routeHeaderFlag) String() string { return fmt.Sprint(*h) }

func (h *routeHeaderFlag) Set(v string) error {
	name, val, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not NAME=VALUE", v)
	}
	*h = append(*h, [2]string{name, val})
	return nil
}

func routeFmtPct(m map[string]float64) string { return route.JoinSorted(m, "%s %.4g%%", ", ") }

func routeFmtWeights(m map[string]int) string { return route.JoinSorted(m, "%s=%d", ",") }

func routeEffLine(e route.Effective) string {
	by := e.DecidedBy
	if e.Switch != "" {
		by += " " + e.Switch
	}
	return fmt.Sprintf("%s  (decided by %s)", routeFmtPct(e.Split), by)
}

func routePrintView(w io.Writer, v route.RouteView, app string) {
	fmt.Fprintf(w, "route      %s (%s)\n", v.Route, v.Kind)
	fmt.Fprintf(w, "split      %s\n", routeFmtWeights(v.Split))
	who := ""
	if app != "" {
		who = " for app " + app
	}
	fmt.Fprintf(w, "effective  %s%s\n", routeEffLine(v.Effective), who)
	fmt.Fprintf(w, "sticky     %s\n", v.Sticky)
	fb := strings.Join(v.Effective.Fallback, " > ")
	if fb == "" {
		fb = "(none)"
	}
	fmt.Fprintf(w, "fallback   %s (retry sent requests: %t)\n", fb, v.Retry)
	if len(v.Force) > 0 {
		fmt.Fprintf(w, "force      %d tester entries\n", len(v.Force))
	}
}

func routePrintExplain(w io.Writer, api string, ex route.Explanation) {
	fmt.Fprintf(w, "%s → route %s\n", api, ex.Route)
	if ex.Cluster == "" {
		fmt.Fprintln(w, "goes      nowhere: every candidate cluster is excluded (503)")
	} else {
		fmt.Fprintf(w, "goes to   %s (decided by %s)\n", ex.Cluster, ex.DecidedBy)
	}
	fmt.Fprintf(w, "why       %s\n", ex.Reason)
	if len(ex.Split) > 0 {
		fmt.Fprintf(w, "split     %s\n", routeFmtPct(ex.Split))
	}
	if ex.StickySource != "" {
		key := ex.StickyKey
		if ex.StickySource == "random" {
			key = "(none: random per request)"
		}
		fmt.Fprintf(w, "sticky    %s (configured %s) %s\n", ex.StickySource, ex.Sticky, key)
	}
	names := make([]string, 0, len(ex.Hash))
	for n := range ex.Hash {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := ex.Hash[n]
		fmt.Fprintf(w, "  hash    %-20s u=%.6f score=%.4f\n", n, h.U, h.Score)
	}
	fb := strings.Join(ex.Fallback, " > ")
	if fb == "" {
		fb = "(none)"
	}
	fmt.Fprintf(w, "fallback  %s (retry sent requests: %t)\n", fb, ex.Retry)
}
