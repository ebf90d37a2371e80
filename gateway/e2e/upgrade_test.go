package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp"
	"github.com/mgw-project/mgw/codec/mmtp/client"
)

func splitHalf(b []byte) ([]byte, []byte) { return b[:len(b)/2], b[len(b)/2:] }

// dialRaw connects and writes b, for bytes the client library would not send alone.
func dialRaw(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

func pendingBytes(t *testing.T, u *upgradeGW) int64 {
	return (&gw{proc: &proc{t: t}, addrs: u.addrs}).stats(t).PendingReadBytes
}

// readMMTPFrame reads one whole frame.
func readMMTPFrame(c net.Conn) (mmtp.Frame, error) {
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		lim := mmtp.DefaultLimits()
		if f, n, err := mmtp.Parse(buf, &lim); err != nil || n > 0 {
			return f, err
		}
		k, err := c.Read(tmp)
		if err != nil {
			return mmtp.Frame{}, err
		}
		buf = append(buf, tmp[:k]...)
	}
}

// upgradeGW is a `mgw serve` whose output goes to a file, not a pipe: the new process a
// hot upgrade starts inherits stdout and stderr, and a pipe it holds would hide the old
// process's exit from the test.
type upgradeGW struct {
	t      *testing.T
	cmd    *exec.Cmd
	logf   string
	cfg    string
	exited chan struct{}
	addrs  map[string]string
	mu     sync.Mutex
	pids   []int // every process to kill at the end (the new ones too)
}

func upgradeConfig(backend string) string {
	return fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
  - {name: mproxy, listen: 127.0.0.1:0, protocol: mmtp, proxy_protocol: true}
clusters:
  - {name: b, hosts: [%q], timeout: 5s}
routes:
  - {api: demo.who, split: {b: 100}, filters: [accesslog]}
  - {api: "*", split: {b: 100}}
  - {path: /, split: {b: 100}}
`, backend)
}

func serveUpgradable(t *testing.T, cfg string, env ...string) *upgradeGW {
	t.Helper()
	dir := t.TempDir()
	u := &upgradeGW{t: t, logf: filepath.Join(dir, "out.log"), cfg: filepath.Join(dir, "mgw.yaml"),
		exited: make(chan struct{}), addrs: map[string]string{}}
	if err := os.WriteFile(u.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(u.logf)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	u.cmd = exec.Command(mgwBin, "serve", "-c", u.cfg)
	u.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	u.cmd.Stdout, u.cmd.Stderr = out, out
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u.pids = append(u.pids, u.cmd.Process.Pid)
	go func() { u.cmd.Wait(); close(u.exited) }()
	t.Cleanup(func() {
		u.mu.Lock()
		// A test that failed before it learned the new process's pid (stats) would leave
		// it running: every process serving this test's config goes.
		for _, pid := range append(u.pids, servingConfig(u.cfg)...) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		u.mu.Unlock()
		<-u.exited
		if t.Failed() {
			t.Logf("mgw serve output (old and new process):\n%s", u.output())
		}
	})
	u.waitLog("Ctrl-C drains", 60*time.Second)
	for _, l := range strings.Split(u.output(), "\n") {
		if m := addrRE.FindStringSubmatch(l); m != nil {
			u.addrs[m[1]] = m[2]
		}
	}
	return u
}

// servingConfig returns the pids of the processes whose command line names cfg.
func servingConfig(cfg string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline"); err == nil && strings.Contains(string(b), cfg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (u *upgradeGW) output() string {
	b, _ := os.ReadFile(u.logf)
	return string(b)
}

// waitLog waits until the output contains s.
func (u *upgradeGW) waitLog(s string, d time.Duration) {
	u.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(u.output(), s) {
		if time.Now().After(deadline) {
			u.t.Fatalf("no %q in the output within %s:\n%s", s, d, u.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (u *upgradeGW) stats() (pid int, inherited int64) {
	u.t.Helper()
	s := (&gw{proc: &proc{t: u.t}, addrs: u.addrs}).stats(u.t)
	u.mu.Lock()
	if s.PID != u.cmd.Process.Pid && !contains(u.pids, s.PID) {
		u.pids = append(u.pids, s.PID)
	}
	u.mu.Unlock()
	return s.PID, s.InheritedConnections
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (u *upgradeGW) metric(t *testing.T, name string) string {
	t.Helper()
	out, err := curl(t, "http://"+u.addrs["admin"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

// loadClients are long connections calling the echo API without pause, each on its own
// connection, never redialing: an error or GOAWAY on any of them is a connection the
// upgrade lost.
type loadClients struct {
	t       *testing.T
	errs    chan error
	calls   []atomic.Int64 // per connection
	goaways atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	mmtp    []*client.Client
}

func startLoad(t *testing.T, u *upgradeGW, nMMTP, nHTTP int) *loadClients {
	l := &loadClients{t: t, errs: make(chan error, 1000), calls: make([]atomic.Int64, nMMTP+nHTTP), stop: make(chan struct{})}
	for i := 0; i < nMMTP; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := client.Dial(ctx, u.addrs["mobile"], client.Options{AppID: "app", DeviceID: fmt.Sprintf("dev-%d", i),
			Hello: true, OnGoAway: func(uint32, string) { l.goaways.Add(1) }})
		cancel()
		if err != nil {
			t.Fatalf("dial mmtp %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		l.mmtp = append(l.mmtp, c)
		l.wg.Add(1)
		go l.runMMTP(i, c)
	}
	for i := 0; i < nHTTP; i++ {
		c, err := net.DialTimeout("tcp", u.addrs["web"], 10*time.Second)
		if err != nil {
			t.Fatalf("dial http %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		l.wg.Add(1)
		go l.runHTTP(nMMTP+i, c)
	}
	return l
}

func (l *loadClients) fail(err error) {
	select {
	case l.errs <- err:
	default:
	}
}

func (l *loadClients) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *loadClients) runMMTP(i int, c *client.Client) {
	defer l.wg.Done()
	for n := 0; !l.stopped(); n++ {
		body := fmt.Sprintf("m%d-%d", i, n)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		resp, err := c.Call(ctx, "demo.echo", nil, []byte(body))
		cancel()
		if err != nil {
			l.fail(fmt.Errorf("mmtp conn %d call %d: %w", i, n, err))
			return
		}
		if resp.Status != 200 || string(resp.Body) != body {
			l.fail(fmt.Errorf("mmtp conn %d call %d: %d %q, want 200 %q", i, n, resp.Status, resp.Body, body))
			return
		}
		l.calls[i].Add(1)
		time.Sleep(3 * time.Millisecond)
	}
}

func (l *loadClients) runHTTP(i int, c net.Conn) {
	defer l.wg.Done()
	br := bufio.NewReader(c)
	for n := 0; !l.stopped(); n++ {
		body := fmt.Sprintf("h%d-%d", i, n)
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := fmt.Fprintf(c, "POST /api/demo.echo HTTP/1.1\r\nHost: mgw\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
			l.fail(fmt.Errorf("http conn %d request %d: write: %w", i, n, err))
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			l.fail(fmt.Errorf("http conn %d request %d: %w", i, n, err))
			return
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(got) != body || resp.Close {
			l.fail(fmt.Errorf("http conn %d request %d: %d %q close=%v (%v), want 200 %q", i, n, resp.StatusCode, got, resp.Close, err, body))
			return
		}
		l.calls[i].Add(1)
		time.Sleep(3 * time.Millisecond)
	}
}

// snapshot returns every connection's call count.
func (l *loadClients) snapshot() []int64 {
	out := make([]int64, len(l.calls))
	for i := range l.calls {
		out[i] = l.calls[i].Load()
	}
	return out
}

// progressed waits until every connection made calls beyond before, failing on the
// first error.
func (l *loadClients) progressed(t *testing.T, before []int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		select {
		case err := <-l.errs:
			t.Fatal(err)
		default:
		}
		behind := 0
		for i := range l.calls {
			if l.calls[i].Load() <= before[i]+2 {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections made no calls within %s", behind, len(l.calls), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *loadClients) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	select {
	case err := <-l.errs:
		t.Fatal(err)
	default:
	}
	if n := l.goaways.Load(); n != 0 {
		t.Fatalf("%d MMTP connections got GOAWAY", n)
	}
}

// TestHotUpgradeKeepsConnections: under continuous requests on MMTP (with HELLO) and HTTP
// keep-alive connections, SIGUSR2 starts a new process that takes every connection: no
// request fails, no connection closes or sees GOAWAY, the old process exits, and the new
// one serves all of them, keeps their HELLO identity, and reports them inherited.
func TestHotUpgradeKeepsConnections(t *testing.T) {
	_, be := backend(t, "b1")
	u := serveUpgradable(t, upgradeConfig(be))
	oldPID, _ := u.stats()
	const nMMTP, nHTTP = 40, 5
	l := startLoad(t, u, nMMTP, nHTTP)
	l.progressed(t, make([]int64, nMMTP+nHTTP), 20*time.Second)
	// Behind an access layer: the client address comes from the PROXY header, once, and
	// must move with the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pushed := make(chan string, 4)
	px, err := client.Dial(ctx, u.addrs["mproxy"], client.Options{Hello: true, DeviceID: "px",
		ProxyHeader: []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"),
		OnPush:      func(topic string, _ codec.Header, body []byte) { pushed <- topic + ":" + string(body) }})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if _, err := px.Call(ctx, "demo.echo", nil, []byte("before")); err != nil {
		t.Fatal(err)
	}
	// Half a frame and half a request head, read by the old process before the upgrade:
	// the new one must get them first and complete them with what comes after.
	halfM, restM := splitHalf(mmtp.AppendRequest(nil, 1, "demo.echo", nil, []byte("split-mmtp"), false))
	rawM := dialRaw(t, u.addrs["mobile"], halfM)
	halfH, restH := splitHalf([]byte("POST /api/demo.echo HTTP/1.1\r\nHost: mgw\r\nContent-Length: 10\r\n\r\nsplit-http"))
	rawH := dialRaw(t, u.addrs["web"], halfH)
	waitFor(t, 10*time.Second, func() bool { return pendingBytes(t, u) >= int64(len(halfM)+len(halfH)) })
	// A request whose body is still arriving when the upgrade begins: the old process
	// must read the rest, answer it, and then move the connection (it waited the quiet
	// timeout with reads paused, kept the connection and answered 10 s late).
	rawB := dialRaw(t, u.addrs["web"], []byte("POST /api/demo.echo HTTP/1.1\r\nHost: mgw\r\nContent-Length: 12\r\n\r\nbody-"))
	brB := bufio.NewReader(rawB)
	time.Sleep(200 * time.Millisecond) // its head and first bytes read by the old process

	if err := syscall.Kill(oldPID, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	u.waitLog("new process ready", 60*time.Second)
	time.Sleep(100 * time.Millisecond) // the handover is under way: connections are held
	rawB.Write([]byte("arrives"))
	rawB.SetReadDeadline(time.Now().Add(5 * time.Second))
	if hr, err := http.ReadResponse(brB, nil); err != nil {
		t.Fatalf("the request whose body arrived during the upgrade: %v", err)
	} else if b, _ := io.ReadAll(hr.Body); hr.StatusCode != 200 || string(b) != "body-arrives" || hr.Close {
		t.Fatalf("the request whose body arrived during the upgrade: %d %q close=%v", hr.StatusCode, b, hr.Close)
	}
	select {
	case <-u.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the old process did not exit after the upgrade")
	}
	if code := u.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the old process exited with %d", code)
	}
	// Every connection is served by the new process now (the old one is gone).
	l.progressed(t, l.snapshot(), 20*time.Second)
	newPID, inherited := u.stats()
	if newPID == oldPID {
		t.Fatalf("/v1/stats still answered by the old pid %d", oldPID)
	}
	if inherited != nMMTP+nHTTP+4 {
		t.Fatalf("inherited_connections = %d, want %d", inherited, nMMTP+nHTTP+4)
	}
	rawM.Write(restM)
	rawM.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := readMMTPFrame(rawM)
	if err != nil || f.StreamID != 1 || string(f.Body) != "split-mmtp" {
		t.Fatalf("the MMTP frame split across the upgrade: %+v %v", f, err)
	}
	// The connection whose body came during the handover moved: its next request is the
	// new process's.
	fmt.Fprintf(rawB, "POST /api/demo.echo HTTP/1.1\r\nHost: mgw\r\nContent-Length: 5\r\n\r\nagain")
	rawB.SetReadDeadline(time.Now().Add(10 * time.Second))
	if hr, err := http.ReadResponse(brB, nil); err != nil {
		t.Fatalf("a request after the upgrade on the connection that moved mid-body: %v", err)
	} else if b, _ := io.ReadAll(hr.Body); hr.StatusCode != 200 || string(b) != "again" {
		t.Fatalf("a request after the upgrade on the connection that moved mid-body: %d %q", hr.StatusCode, b)
	}
	rawH.Write(restH)
	rawH.SetReadDeadline(time.Now().Add(10 * time.Second))
	hr, err := http.ReadResponse(bufio.NewReader(rawH), nil)
	if err != nil {
		t.Fatalf("the HTTP request split across the upgrade: %v", err)
	}
	if b, _ := io.ReadAll(hr.Body); hr.StatusCode != 200 || string(b) != "split-http" {
		t.Fatalf("the HTTP request split across the upgrade: %d %q", hr.StatusCode, b)
	}
	// The new process logs the proxied connection's call with the PROXY header's source.
	if _, err := px.Call(ctx, "demo.who", nil, []byte("after")); err != nil {
		t.Fatal(err)
	}
	u.waitLog(`"client":"203.0.113.7:5555"`, 10*time.Second)
	// The device stays bound to its moved connection: a push published to the new process
	// reaches it there.
	presp, err := http.Post("http://"+u.addrs["admin"]+"/v1/push", "application/json",
		strings.NewReader(`{"device":"px","topic":"moved","body":"still here"}`))
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish after the upgrade: %d", presp.StatusCode)
	}
	select {
	case got := <-pushed:
		if got != "moved:still here" {
			t.Fatalf("push %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a push published after the upgrade did not reach the device's moved connection")
	}
	// The HELLO identity moved with the connection: naming another device is refused.
	resp, err := l.mmtp[0].Call(ctx, "demo.echo", codec.Header{{Key: "device-id", Value: "someone-else"}}, []byte("x"))
	if err != nil || resp.Status != 401 {
		t.Fatalf("call with another device-id after the upgrade: %v %+v, want 401", err, resp)
	}
	// New connections reach the new process on the same addresses, the admin API too.
	c, err := client.Dial(ctx, u.addrs["mobile"], client.Options{Hello: true, DeviceID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, err := c.Call(ctx, "demo.echo", nil, []byte("late")); err != nil || string(resp.Body) != "late" {
		t.Fatalf("new connection after the upgrade: %v %+v", err, resp)
	}
	l.finish(t)
	out := u.output()
	for _, want := range []string{"upgrade committed", "migrated=49", "took over from the old process"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestHotUpgradeRollback: a new process that dies before COMMIT (here after adopting its
// first batch, by the test hook; first a config it rejects) leaves every connection with
// the old process, which goes on serving them, accepting and answering its admin API.
func TestHotUpgradeRollback(t *testing.T) {
	_, be := backend(t, "b1")
	u := serveUpgradable(t, upgradeConfig(be), "MGW_UPGRADE_TEST_EXIT=after_batch")
	pid, _ := u.stats()
	const nMMTP, nHTTP = 30, 4
	l := startLoad(t, u, nMMTP, nHTTP)
	l.progressed(t, make([]int64, nMMTP+nHTTP), 20*time.Second)

	// A config the new process rejects: it never gets ready.
	good, err := os.ReadFile(u.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.cfg, []byte("listeners: [{name: x, protocol: nope}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGUSR2)
	u.waitLog("did not get ready", 60*time.Second)
	l.progressed(t, l.snapshot(), 20*time.Second)

	// A new process that dies holding connections it adopted but was not given.
	if err := os.WriteFile(u.cfg, good, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGUSR2)
	u.waitLog("after_batch: exiting", 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(u.output(), "upgrade failed; this process keeps serving") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("want two failed upgrades in the output")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-u.exited:
		t.Fatal("the old process exited after a failed upgrade")
	default:
	}
	l.progressed(t, l.snapshot(), 20*time.Second)
	if got, _ := u.stats(); got != pid {
		t.Fatalf("/v1/stats answered by pid %d, want the old process %d", got, pid)
	}
	if v := u.metric(t, "mgw_upgrade_rollbacks_total"); v != "2" {
		t.Fatalf("mgw_upgrade_rollbacks_total = %q, want 2", v)
	}
	// Still accepting.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, u.addrs["mobile"], client.Options{Hello: true, DeviceID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, err := c.Call(ctx, "demo.echo", nil, []byte("late")); err != nil || string(resp.Body) != "late" {
		t.Fatalf("new connection after the rollback: %v %+v", err, resp)
	}
	l.finish(t)
}

// TestLoadtestUpgradeScenario is issue 14's "done when" as a user runs it, small: `mgw
// loadtest run -scenario upgrade` holds HELLO'd connections under a request rate, sends
// the gateway SIGUSR2 halfway through, and its row must show no failed request and no
// connection lost, the new process having inherited every connection.
func TestLoadtestUpgradeScenario(t *testing.T) {
	_, be := backend(t, "b1")
	u := serveUpgradable(t, upgradeConfig(be))
	oldPID, _ := u.stats()
	const conns = 400
	// CPU the old process used before: the new one's counter starts below it.
	runLoadtest(t, "run", "-target", u.addrs["mobile"], "-conns", "50", "-rate", "3000", "-duration", "2s", "-warmup", "0s")
	res, b := runLoadtest(t, "run", "-target", u.addrs["mobile"], "-stats", u.addrs["admin"],
		"-scenario", "upgrade", "-conns", fmt.Sprint(conns), "-hello", "-rate", "200", "-duration", "4s", "-warmup", "1s")
	if len(res.Rows) != 1 || res.Partial {
		t.Fatalf("rows %d partial %v %s\n%s", len(res.Rows), res.Partial, res.Reason, b)
	}
	row := res.Rows[0]
	if row.ConnsLost != 0 || len(row.Errors) != 0 || row.OK == 0 || row.Conns != conns {
		t.Fatalf("conns %d lost %d errors %v ok %d\n%s", row.Conns, row.ConnsLost, row.Errors, row.OK, b)
	}
	m := row.Metrics
	if int(m["upgrade_old_pid"]) != oldPID || m["upgrade_new_pid"] == 0 || int(m["upgrade_new_pid"]) == oldPID ||
		m["upgrade_inherited_connections"] != conns {
		t.Fatalf("upgrade metrics %v (old pid %d)\n%s", m, oldPID, b)
	}
	// The new process's CPU counts from zero: the old one's is carried (it was -493 %).
	if cpu := row.Gateway.CPUPercent; cpu <= 0 || cpu > 200 {
		t.Errorf("gateway CPU %.0f%% over the upgrade, want 0..200 %%\n%s", cpu, b)
	}
	u.stats() // remembers the new pid, for the cleanup
	select {
	case <-u.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the old process did not exit after the upgrade")
	}
}
