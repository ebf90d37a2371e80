// Package e2e tests mgw as a user runs it: the real `mgw` binary and `mgw backend`
// processes on loopback, driven by curl, the MMTP client library, wrk and nginx.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/gateway"
)

var mgwBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mgw-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mgwBin = filepath.Join(dir, "mgw")
	build := exec.Command("go", "build", "-race", "-o", mgwBin, "../../cmd/mgw")
	if os.Getenv("MGW_E2E_NORACE") != "" {
		build = exec.Command("go", "build", "-o", mgwBin, "../../cmd/mgw")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mgw:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a child process whose output the test watches.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	line chan string
	done chan struct{}
	err  error
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, line: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(mgwBin, args...)
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.write(sc.Text() + "\n")
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
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

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) { w.p.write(string(b)); return len(b), nil }

func (p *proc) write(s string) {
	p.mu.Lock()
	p.out.WriteString(s)
	p.mu.Unlock()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine returns the first stdout line matching re.
func (p *proc) waitLine(re *regexp.Regexp, d time.Duration) []string {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-p.line:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			p.t.Fatalf("process exited (%v) before printing %s:\n%s", p.err, re, p.output())
		case <-deadline:
			p.t.Fatalf("no line matching %s within %s:\n%s", re, d, p.output())
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("process did not exit within %s:\n%s", d, p.output())
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

// backend starts `mgw backend` on a free port and returns its address.
func backend(t testing.TB, name string) (*proc, string) {
	p := start(t, "backend "+name, "backend", "--listen", "127.0.0.1:0", "--name", name)
	return p, p.waitLine(listeningRE, 30*time.Second)[1]
}

// gw is a running `mgw serve`.
type gw struct {
	*proc
	addrs map[string]string // listener name -> address; "admin" too
	dir   string
}

var addrRE = regexp.MustCompile(`^\s+(\S+)\s+(?:mmtp|http1)?\s*(127\.0\.0\.1:\d+)`)

// serve writes cfg to a file and runs `mgw serve -c` on it; listeners should use port 0.
func serve(t testing.TB, cfg string, env ...string) *gw {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mgw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, line: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.Command(mgwBin, "serve", "-c", path)
	p.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = &lockedWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mgw serve: %v", err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.write(sc.Text() + "\n")
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("mgw serve output:\n%s", p.output())
		}
	})
	g := &gw{proc: p, addrs: map[string]string{}, dir: dir}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				<-p.done
				t.Fatalf("mgw serve exited (%v):\n%s", p.err, p.output())
			}
			if m := addrRE.FindStringSubmatch(l); m != nil {
				g.addrs[m[1]] = m[2]
			}
			if strings.Contains(l, "Ctrl-C drains") {
				return g
			}
		case <-deadline:
			t.Fatalf("mgw serve not ready in time:\n%s", p.output())
		}
	}
}

// mmtpClient dials the named MMTP listener.
func (g *gw) mmtpClient(t testing.TB, listener string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, g.addrs[listener], opts)
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freePort finds a loopback port nobody listens on, for programs (nginx) that cannot
// be told to pick one themselves.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedAddr is a loopback address where a connection is refused.
func closedAddr(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// curl runs the real curl binary and returns its stdout.
func curl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "30"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("curl %v: %v: %s", args, err, errb.String())
	}
	return out.String(), nil
}

func readAll(t testing.TB, r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stats reads the gateway's /v1/stats.
func (g *gw) stats(t testing.TB) gateway.Stats {
	t.Helper()
	resp, err := http.Get("http://" + g.addrs["admin"] + "/v1/stats")
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	defer resp.Body.Close()
	var s gateway.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("stats: %v", err)
	}
	return s
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
