// Package fleettest starts the real engines a fleet shares, etcd and redis-server, on
// loopback ports found free, with their data in the test's temp dir, for tests. Where a
// binary is missing the test is skipped, except in CI (CI set), where it fails: CI
// installs them (scripts/deps.sh), so a missing one there is a broken install step.
package fleettest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/internal/testbin"
)

// FreePort returns a loopback port nobody listens on now. Another process may take it
// before the caller binds it; the engines here fail loudly if so.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is a running engine process.
type Server struct {
	t    testing.TB
	name string
	args []string
	bin  string
	Addr string // host:port clients connect to

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *strings.Builder
	done chan struct{}
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	out := &strings.Builder{}
	w := &lockedWriter{b: out, mu: &s.mu}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.out, s.done = cmd, out, done
	s.mu.Unlock()
}

// Stop kills the process and waits for it; the data dir stays, so Restart resumes it.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// Freeze stops the process without ending it (SIGSTOP): its sockets stay open and
// accept, nothing answers. Thaw (SIGCONT) lets it go on; the test's end thaws it too.
func (s *Server) Freeze() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGSTOP)
		s.t.Cleanup(s.Thaw)
	}
}

// Thaw resumes a frozen process.
func (s *Server) Thaw() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart starts the process again on the same port and data dir and waits until it serves.
func (s *Server) Restart(ready func() error) {
	s.t.Helper()
	s.Stop()
	s.start()
	s.wait(ready)
}

// Output is what the process printed so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func (s *Server) wait(ready func() error) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			s.t.Fatalf("%s exited before serving:\n%s", s.name, s.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not serve within 20s (%v):\n%s", s.name, err, s.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

// Etcd is a one-member etcd.
type Etcd struct {
	*Server
	Endpoint string // http://127.0.0.1:P
}

// StartEtcd runs `etcd` with its data in a temp dir until the test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := testbin.Need(t, "etcd", "etcd-server")
	dir := t.TempDir()
	cp, pp := FreePort(t), FreePort(t)
	client := fmt.Sprintf("http://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	s := &Server{t: t, name: "etcd", bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", cp), args: []string{
		"--name", "t", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t=" + peer, "--log-level", "warn",
	}}
	e := &Etcd{Server: s, Endpoint: client}
	s.start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("etcd output:\n%s", s.Output())
		}
	})
	s.wait(e.Ready)
	return e
}

// Ready reports whether etcd answers its health endpoint with a leader.
func (e *Etcd) Ready() error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(e.Endpoint + "/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// Redis is a redis-server without persistence.
type Redis struct{ *Server }

// StartRedis runs `redis-server` on a free loopback port until the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := testbin.Need(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := FreePort(t)
	s := &Server{t: t, name: "redis-server", bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", port), args: []string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "yes", "--loglevel", "warning",
	}}
	r := &Redis{Server: s}
	s.start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("redis-server output:\n%s", s.Output())
		}
	})
	s.wait(r.Ready)
	return r
}

// Ready reports whether redis answers PING.
func (r *Redis) Ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "+PONG") {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}
