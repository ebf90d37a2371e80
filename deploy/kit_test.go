// Package deploy tests the operators' kit in this folder against the real thing: the
// Kubernetes manifests against a gateway started from their ConfigMap, the Grafana
// dashboard and the Prometheus rules against a running gateway's /metrics (and a real
// Prometheus scraping it), and the load report in headless Chromium.
//
// The gateway binary is built by the Dockerfile's own `go build` line, so what is tested
// is what the image holds. Tools the checks need (promtool, prometheus, chromium) are
// skipped when absent on a developer's box and fail the test in CI (CI set), where
// .ci/run installs them.
package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

var mgwBin string

// buildLineRE finds the Dockerfile's build step; its output path is replaced by ours.
var buildLineRE = regexp.MustCompile(`(?m)^RUN (.*\bgo build\b.*)$`)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mgw-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mgwBin = filepath.Join(dir, "mgw")
	if err := buildLikeDockerfile(mgwBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLikeDockerfile runs the Dockerfile's `go build` line from the repository root (the
// image's build context), writing the binary to out instead of the image's path.
func buildLikeDockerfile(out string) error {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		return err
	}
	m := buildLineRE.FindSubmatch(df)
	if m == nil {
		return fmt.Errorf("deploy/Dockerfile: no `RUN ... go build ...` line")
	}
	line := string(m[1])
	outRE := regexp.MustCompile(`-o\s+(\S+)`)
	if !outRE.MatchString(line) {
		return fmt.Errorf("deploy/Dockerfile: the build line %q has no -o", line)
	}
	line = outRE.ReplaceAllLiteralString(line, "-o "+out)
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("deploy/Dockerfile's build line %q: %w", line, err)
	}
	return nil
}

// proc is a child process whose output the test keeps for its failure message.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   bytes.Buffer
	lines chan string
	done  chan struct{}
	err   error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProc starts prog; its stdout lines are also handed to lines (first 256).
func startProc(t *testing.T, name string, env []string, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{lines: make(chan string, 256), done: make(chan struct{})}
	p.cmd = exec.Command(prog, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stdout)
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

// waitExit waits up to d for the process to end and returns its exit code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("process did not exit within %s:\n%s", d, p.output())
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

var listeningRE = regexp.MustCompile(`^listening (\S+)$`)

// startBackend runs `mgw backend` on a free loopback port and returns its address.
func startBackend(t *testing.T) string {
	t.Helper()
	p := startProc(t, "mgw backend", nil, mgwBin, "backend", "--listen", "127.0.0.1:0", "--name", "kit")
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("mgw backend exited: %v\n%s", p.err, p.output())
			}
			if m := listeningRE.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-deadline:
			t.Fatalf("mgw backend printed no address:\n%s", p.output())
		}
	}
}

// gateway is a running `mgw serve`; addrs maps listener names, "admin" and "health" to
// the addresses its ready banner printed.
type gateway struct {
	*proc
	addrs map[string]string
}

var bannerAddrRE = regexp.MustCompile(`^\s+(\S+)\s+(?:mmtp|http1)?\s*(127\.0\.0\.1:\d+)`)

// serve writes cfg to a file and runs `mgw serve -c` on it until its ready banner.
func serve(t *testing.T, cfg string, env ...string) *gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gateway{proc: startProc(t, "mgw serve", env, mgwBin, "serve", "-c", path), addrs: map[string]string{}}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-g.lines:
			if !ok {
				t.Fatalf("mgw serve exited: %v\n%s", g.err, g.output())
			}
			if m := bannerAddrRE.FindStringSubmatch(l); m != nil {
				g.addrs[m[1]] = m[2]
			}
			if strings.Contains(l, "Ctrl-C drains") {
				return g
			}
		case <-deadline:
			t.Fatalf("mgw serve not ready within 60s:\n%s", g.output())
		}
	}
}

var httpc = &http.Client{Timeout: 30 * time.Second}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post returns the status and body of POST url with body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := httpc.Post(url, "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// yamlDocs decodes every document of a YAML file into generic maps.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// at walks a generic YAML/JSON value by map keys and list indexes; nil when absent.
func at(v any, path ...any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any { l, _ := v.([]any); return l }
