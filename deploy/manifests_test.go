package deploy

import (
	"debug/elf"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mgw-project/mgw/config"
)

// safeSysctls are the sysctls every kubelet allows (Kubernetes docs, "Using sysctls in a
// Kubernetes Cluster"), with the release that made them safe. Any other needs the node's
// kubelet to run with --allowed-unsafe-sysctls, or the pod is refused (SysctlForbidden).
var safeSysctls = map[string]string{
	"kernel.shm_rmid_forced":              "1.12",
	"net.ipv4.ip_local_port_range":        "1.12",
	"net.ipv4.tcp_syncookies":             "1.12",
	"net.ipv4.ping_group_range":           "1.18",
	"net.ipv4.ip_unprivileged_port_start": "1.22",
	"net.ipv4.ip_local_reserved_ports":    "1.27",
	"net.ipv4.tcp_keepalive_time":         "1.29",
	"net.ipv4.tcp_fin_timeout":            "1.29",
	"net.ipv4.tcp_keepalive_intvl":        "1.29",
	"net.ipv4.tcp_keepalive_probes":       "1.29",
}

// kit is deploy/k8s/ parsed, one object of each kind.
type kit struct {
	configMap, deployment, service, pdb map[string]any
	container                           map[string]any
	configPath                          string // the file the container's args read
	configText                          string
	cfg                                 *config.Config
}

func loadKit(t *testing.T) *kit {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	byKind := map[string]map[string]any{}
	for _, f := range files {
		for _, d := range yamlDocs(t, f) {
			kind := str(d["kind"])
			if byKind[kind] != nil {
				t.Fatalf("%s: a second %s", f, kind)
			}
			if str(d["apiVersion"]) == "" || str(at(d, "metadata", "name")) == "" {
				t.Fatalf("%s: a %s without apiVersion or metadata.name", f, kind)
			}
			byKind[kind] = d
		}
	}
	k := &kit{configMap: byKind["ConfigMap"], deployment: byKind["Deployment"], service: byKind["Service"],
		pdb: byKind["PodDisruptionBudget"]}
	if k.configMap == nil || k.deployment == nil || k.service == nil || k.pdb == nil {
		t.Fatalf("deploy/k8s lacks one of ConfigMap, Deployment, Service, PodDisruptionBudget: has %v", keys(byKind))
	}
	for _, c := range list(at(k.deployment, "spec", "template", "spec", "containers")) {
		if str(at(c, "name")) == "mgw" {
			k.container, _ = c.(map[string]any)
		}
	}
	if k.container == nil {
		t.Fatal("the Deployment has no container named mgw")
	}
	args := list(k.container["args"])
	for i := 0; i+1 < len(args); i++ {
		if a := str(args[i]); a == "-c" || a == "-config" || a == "--config" {
			k.configPath = str(args[i+1])
		}
	}
	if len(args) == 0 || str(args[0]) != "serve" || k.configPath == "" {
		t.Fatalf("container args %v: want serve -c <file>", args)
	}
	// The file is a key of the ConfigMap, mounted as a directory (not subPath, which the
	// kubelet never updates, so a reload would read the old file).
	var mounted bool
	for _, m := range list(k.container["volumeMounts"]) {
		if str(at(m, "mountPath")) != path.Dir(k.configPath) {
			continue
		}
		if str(at(m, "subPath")) != "" {
			t.Errorf("mount %v uses subPath: the kubelet does not update it, so SIGHUP would reload the old config", m)
		}
		v := volume(k, str(at(m, "name")))
		if got, want := str(at(v, "configMap", "name")), str(at(k.configMap, "metadata", "name")); got != want {
			t.Fatalf("%s is mounted from volume %v, not from the ConfigMap %q", path.Dir(k.configPath), v, want)
		}
		mounted = true
	}
	if !mounted {
		t.Fatalf("no volume is mounted at %s, where the args read %s", path.Dir(k.configPath), k.configPath)
	}
	k.configText = str(at(k.configMap, "data", path.Base(k.configPath)))
	if k.configText == "" {
		t.Fatalf("the ConfigMap has no key %q (the file the container reads); keys: %v",
			path.Base(k.configPath), keys(at(k.configMap, "data")))
	}
	k.cfg, err = config.Parse([]byte(k.configText))
	if err == nil {
		err = k.cfg.Validate()
	}
	if err != nil {
		t.Fatalf("the ConfigMap's config: %v", err)
	}
	return k
}

func volume(k *kit, name string) map[string]any {
	for _, v := range list(at(k.deployment, "spec", "template", "spec", "volumes")) {
		if str(at(v, "name")) == name {
			m, _ := v.(map[string]any)
			return m
		}
	}
	return nil
}

func keys(v any) []string {
	var out []string
	switch m := v.(type) {
	case map[string]any:
		for k := range m {
			out = append(out, k)
		}
	case map[string]map[string]any:
		for k := range m {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

// containerPort resolves a port reference (a name or a number) to the container's port.
func containerPort(k *kit, ref any) (int, bool) {
	for _, p := range list(k.container["ports"]) {
		n, _ := toInt(at(p, "containerPort"))
		if str(at(p, "name")) == str(ref) {
			return n, true
		}
		if r, ok := ref.(int); ok && r == n {
			return n, true
		}
	}
	return 0, false
}

func hostPort(t *testing.T, field, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", field, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: port: %v", field, addr, err)
	}
	return h, n
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// bytesOf reads a Kubernetes quantity (2Gi, 512Mi) or a Go GOMEMLIMIT (1GiB, 800MiB).
func bytesOf(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10},
		{"G", 1e9}, {"M", 1e6}, {"k", 1e3}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				continue
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a byte quantity", s)
}

// TestManifestsAgree: the names the manifests share agree with each other and with the
// config they mount: ConfigMap key = the file the args read, listener ports = container
// ports = Service targetPorts, probes on the health listener, the admin port unexposed,
// token file in the Secret's mount, a grace period above preStop plus drain, sysctls a
// kubelet admits, and non-root as the image's user.
func TestManifestsAgree(t *testing.T) {
	k := loadKit(t)
	podLabels, _ := at(k.deployment, "spec", "template", "metadata", "labels").(map[string]any)
	for name, sel := range map[string]any{
		"Deployment selector": at(k.deployment, "spec", "selector", "matchLabels"),
		"Service selector":    at(k.service, "spec", "selector"),
		"PDB selector":        at(k.pdb, "spec", "selector", "matchLabels"),
	} {
		m, _ := sel.(map[string]any)
		if len(m) == 0 {
			t.Errorf("%s is empty", name)
		}
		for lk, lv := range m {
			if str(podLabels[lk]) != str(lv) {
				t.Errorf("%s %s=%v does not match the pod's labels %v", name, lk, lv, podLabels)
			}
		}
	}

	// Ports: every listener the pod network must reach is a container port, and nothing
	// else is.
	want := map[int]string{}
	for _, l := range k.cfg.Listeners {
		h, p := hostPort(t, "listeners "+l.Name+" listen", l.Listen)
		if loopback(h) {
			t.Errorf("listener %s listens on %s: unreachable from outside the pod", l.Name, l.Listen)
		}
		want[p] = "listener " + l.Name
	}
	if k.cfg.Health.Listen == "" {
		t.Fatal("the config has no health.listen: kubelet and Prometheus need it")
	}
	hh, healthPort := hostPort(t, "health.listen", k.cfg.Health.Listen)
	if loopback(hh) {
		t.Errorf("health.listen %s is loopback: kubelet cannot probe it", k.cfg.Health.Listen)
	}
	want[healthPort] = "health"
	if k.cfg.Admin.Listen != "" && !strings.HasPrefix(k.cfg.Admin.Listen, "unix:") {
		ah, ap := hostPort(t, "admin.listen", k.cfg.Admin.Listen)
		if !loopback(ah) {
			t.Errorf("admin.listen %s is on the pod network; keep it on loopback (docs/operations.md, In a cluster)", k.cfg.Admin.Listen)
		}
		if _, exposed := containerPort(k, ap); exposed {
			t.Errorf("the admin port %d is a container port", ap)
		}
	}
	have := map[int]bool{}
	for _, p := range list(k.container["ports"]) {
		n, _ := toInt(at(p, "containerPort"))
		have[n] = true
		if want[n] == "" {
			t.Errorf("container port %v is nothing the config listens on (%v)", p, want)
		}
	}
	for p, what := range want {
		if !have[p] {
			t.Errorf("%s listens on port %d, which is not a container port", what, p)
		}
	}
	for _, sp := range list(at(k.service, "spec", "ports")) {
		n, ok := containerPort(k, at(sp, "targetPort"))
		if !ok {
			t.Errorf("Service port %v: targetPort is no container port", sp)
			continue
		}
		if !strings.HasPrefix(want[n], "listener ") {
			t.Errorf("Service port %v reaches %s, not a front-door listener", sp, want[n])
		}
	}

	// Probes: on the health listener (no token, reachable), paths checked for real below.
	probes := map[string]string{}
	for _, name := range []string{"livenessProbe", "readinessProbe"} {
		p := at(k.container, name, "httpGet")
		if p == nil {
			t.Errorf("%s is not an httpGet probe", name)
			continue
		}
		n, ok := containerPort(k, at(p, "port"))
		if !ok || n != healthPort {
			t.Errorf("%s port %v: want the health listener's port %d", name, at(p, "port"), healthPort)
		}
		probes[name] = str(at(p, "path"))
	}
	if probes["livenessProbe"] == probes["readinessProbe"] {
		t.Errorf("liveness and readiness probe the same path %q: readiness must be /readyz", probes["livenessProbe"])
	}

	// The admin token is read from the Secret's mount.
	for _, tok := range k.cfg.Admin.Tokens {
		if tok.File == "" {
			continue
		}
		var ok bool
		for _, m := range list(k.container["volumeMounts"]) {
			if str(at(m, "mountPath")) == path.Dir(tok.File) && at(volume(k, str(at(m, "name"))), "secret", "secretName") != nil {
				ok = true
			}
		}
		if !ok {
			t.Errorf("admin token %q reads %s, which is in no Secret volume mount", tok.Name, tok.File)
		}
	}

	// Termination: the kubelet waits preStop, then SIGTERM starts the drain; all of it must
	// end before the grace period, or requests in flight are killed.
	grace, ok := toInt(at(k.deployment, "spec", "template", "spec", "terminationGracePeriodSeconds"))
	if !ok {
		t.Fatal("no terminationGracePeriodSeconds (the default 30 s would be an accident)")
	}
	pre, _ := toInt(at(k.container, "lifecycle", "preStop", "sleep", "seconds"))
	if at(k.container, "lifecycle", "preStop") == nil {
		t.Error("no preStop: SIGTERM would stop accepting before the endpoints are removed")
	}
	drain := k.cfg.Runtime.DrainTime.D()
	if drain <= 0 {
		drain = time.Duration(config.DefaultDrainTimeout)
	}
	if time.Duration(grace)*time.Second <= time.Duration(pre)*time.Second+drain {
		t.Errorf("terminationGracePeriodSeconds %d <= preStop %ds + runtime.drain_timeout %s", grace, pre, drain)
	}

	// Memory: Go's soft limit below the container's hard one.
	memLimit, err := bytesOf(str(at(k.container, "resources", "limits", "memory")))
	if err != nil {
		t.Errorf("resources.limits.memory: %v", err)
	}
	if str(at(k.container, "resources", "limits", "cpu")) == "" {
		t.Error("no resources.limits.cpu")
	}
	var goMem int64
	for _, e := range list(k.container["env"]) {
		if str(at(e, "name")) == "GOMEMLIMIT" {
			goMem, err = bytesOf(str(at(e, "value")))
			if err != nil {
				t.Errorf("GOMEMLIMIT: %v", err)
			}
		}
	}
	if goMem <= 0 || goMem >= memLimit {
		t.Errorf("GOMEMLIMIT %d must be set and below the memory limit %d", goMem, memLimit)
	}

	// Sysctls: only what every kubelet admits; somaxconn is documented as opt-in.
	for _, s := range list(at(k.deployment, "spec", "template", "spec", "securityContext", "sysctls")) {
		if _, ok := safeSysctls[str(at(s, "name"))]; !ok {
			t.Errorf("sysctl %v is not a safe sysctl: kubelets without --allowed-unsafe-sysctls refuse the pod", s)
		}
	}
	dep, _ := os.ReadFile("k8s/deployment.yaml")
	if !strings.Contains(string(dep), "--allowed-unsafe-sysctls=net.core.somaxconn") {
		t.Error("deployment.yaml does not say how to allow net.core.somaxconn")
	}

	// Non-root, as the image's user.
	uid := dockerfileUser(t)
	if at(k.deployment, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("the pod does not set runAsNonRoot: true")
	}
	if got, _ := toInt(at(k.deployment, "spec", "template", "spec", "securityContext", "runAsUser")); got != uid {
		t.Errorf("runAsUser %d, the image's USER is %d", got, uid)
	}
	if k.container["command"] != nil {
		t.Errorf("the container overrides the image's entrypoint: %v", k.container["command"])
	}

	// The budget lets a node drain go on (one pod at a time) and never all at once.
	replicas, _ := toInt(at(k.deployment, "spec", "replicas"))
	if mu, ok := toInt(at(k.pdb, "spec", "maxUnavailable")); ok {
		if mu < 1 || mu >= replicas {
			t.Errorf("PDB maxUnavailable %d with %d replicas", mu, replicas)
		}
	} else if ma, ok := toInt(at(k.pdb, "spec", "minAvailable")); !ok || ma >= replicas {
		t.Errorf("PDB minAvailable %v with %d replicas blocks every eviction", at(k.pdb, "spec", "minAvailable"), replicas)
	}

	t.Run("real gateway", func(t *testing.T) { probeRealGateway(t, k, probes) })
}

// probeRealGateway starts `mgw serve` on the ConfigMap's config, with addresses moved to
// loopback port 0, the token file and cluster hosts made local, and checks what kubelet
// would see: each probe path 200, then on SIGTERM readiness 503 while a request in flight
// finishes, and an exit 0 within the drain timeout.
func probeRealGateway(t *testing.T, k *kit, probes map[string]string) {
	backend := startBackend(t)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(k.configText), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range list(cfg["listeners"]) {
		l.(map[string]any)["listen"] = "127.0.0.1:0"
	}
	at(cfg, "health").(map[string]any)["listen"] = "127.0.0.1:0"
	admin, _ := at(cfg, "admin").(map[string]any)
	if admin != nil {
		admin["listen"] = "127.0.0.1:0"
		tokFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
		for _, tok := range list(admin["tokens"]) {
			if m := tok.(map[string]any); m["file"] != nil {
				m["file"] = tokFile
			}
		}
	}
	for _, c := range list(cfg["clusters"]) {
		c.(map[string]any)["hosts"] = []any{backend}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, string(out))
	health := g.addrs["health"]
	if health == "" {
		t.Fatalf("the gateway printed no health address: %v", g.addrs)
	}
	for name, p := range probes {
		if code, body := get(t, "http://"+health+p); code != 200 {
			t.Errorf("%s GET %s on the health listener: %d %q, want 200", name, p, code, body)
		}
	}
	if code, body := get(t, "http://"+health+"/metrics"); code != 200 || !strings.Contains(body, "mgw_listener_connections") {
		t.Errorf("GET /metrics on the health listener: %d, %d bytes", code, len(body))
	}
	// The config's routes reach the cluster.
	web := ""
	for _, l := range k.cfg.Listeners {
		if l.Protocol == "http1" {
			web = g.addrs[l.Name]
		}
	}
	if web == "" {
		t.Fatal("no http1 listener to send a request through")
	}
	if code, body := post(t, "http://"+web+"/api/demo.echo", "hi"); code != 200 || body != "hi" {
		t.Fatalf("POST /api/demo.echo through the config's routes: %d %q", code, body)
	}

	// SIGTERM with a request in flight: readiness turns 503 at once (the Service stops
	// sending), the request is answered, the process exits 0 before the drain timeout.
	slow := make(chan string, 1)
	go func() {
		resp, err := httpc.Post("http://"+web+"/api/demo.sleep", "text/plain", strings.NewReader("1500"))
		if err != nil {
			slow <- err.Error()
			return
		}
		resp.Body.Close()
		slow <- resp.Status
	}()
	waitInFlight(t, health)
	start := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	code := 0
	for time.Now().Before(deadline) {
		if code, _ = get(t, "http://"+health+probes["readinessProbe"]); code == 503 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 503 {
		t.Errorf("readiness during the drain: %d, want 503", code)
	}
	if s := <-slow; s != "200 OK" {
		t.Errorf("the request in flight at SIGTERM: %s, want 200 OK", s)
	}
	drain := k.cfg.Runtime.DrainTime.D()
	if rc := g.waitExit(t, drain+5*time.Second); rc != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", rc)
	}
	if took := time.Since(start); took > drain {
		t.Errorf("the drain took %s, over runtime.drain_timeout %s", took, drain)
	}
	if !strings.Contains(g.output(), "drain finished") {
		t.Error("no `drain finished` log line")
	}
}

var inFlightRE = regexp.MustCompile(`(?m)^mgw_requests_in_flight (\d+)`)

// waitInFlight waits until the gateway counts a request in flight.
func waitInFlight(t *testing.T, health string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, body := get(t, "http://"+health+"/metrics")
		if m := inFlightRE.FindStringSubmatch(body); m != nil && m[1] != "0" {
			return
		}
	}
	t.Fatal("the slow request never showed in mgw_requests_in_flight")
}

var userRE = regexp.MustCompile(`(?m)^USER\s+(\d+)`)

// dockerfileUser returns the numeric USER of the Dockerfile's last stage.
func dockerfileUser(t *testing.T) int {
	t.Helper()
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	ms := userRE.FindAllStringSubmatch(string(df), -1)
	if ms == nil {
		t.Fatal("deploy/Dockerfile sets no numeric USER")
	}
	uid, _ := strconv.Atoi(ms[len(ms)-1][1])
	return uid
}

// TestDockerfile: multi-stage, a final stage without a shell or libc, non-root, and a
// build line that gives a static binary (the one every test here runs).
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(df), -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	final := froms[len(froms)-1][1]
	if final != "scratch" && !strings.Contains(final, "distroless/static") {
		t.Errorf("final stage FROM %s: want scratch or distroless/static (no libc, no shell)", final)
	}
	if uid := dockerfileUser(t); uid == 0 {
		t.Error("USER 0")
	}
	if !strings.Contains(string(buildLineRE.Find(df)), "CGO_ENABLED=0") {
		t.Error("the build line does not set CGO_ENABLED=0")
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \["/mgw"\]`).Match(df) || !strings.Contains(string(df), "COPY --from=build /out/mgw /mgw") {
		t.Error(`want the build stage's /out/mgw copied to /mgw and ENTRYPOINT ["/mgw"] (the Deployment's args follow it)`)
	}
	f, err := elf.Open(mgwBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}
