package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mgw-project/mgw/netpoll"
)

// A hot upgrade (docs/operations.md, "Hot upgrade") starts the new binary with the
// listening sockets and a handover socket, then moves every quiet connection to it in
// two phases: the old process keeps each connection (paused, its descriptor open) until
// the new one has adopted them all and the old one has sent COMMIT and heard COMMITTED.
// Before that point any failure rolls back: the new process is killed and the old one
// resumes everything, having released nothing.
//
// The handover socket is a SOCK_SEQPACKET socketpair: one JSON message per packet, the
// connections' descriptors beside a batch in SCM_RIGHTS.
//
//	child  → parent  ready      the child listens (on the inherited sockets) and serves
//	parent → child   batch      up to maxBatch connections' state + descriptors
//	child  → parent  ack        which of them it could not adopt (the parent keeps those)
//	parent → child   commit     the connections are the child's
//	child  → parent  committed  the child resumes them; the parent closes its copies

// Environment of a process started by an upgrade.
const (
	envUpgradeFD = "MGW_UPGRADE_FD" // the handover socket's descriptor
	envInherit   = "MGW_INHERIT"    // name=fd,... of listening sockets; @admin, @health for those
	// envUpgradeTestExit is a test hook: the new process exits with status 3 at the
	// named point of the handover, before COMMIT ("after_ready", "after_batch"), so
	// tests can show the old process rolls back and keeps every connection.
	envUpgradeTestExit = "MGW_UPGRADE_TEST_EXIT"
)

const (
	msgReady     = "ready"
	msgBatch     = "batch"
	msgAck       = "ack"
	msgCommit    = "commit"
	msgCommitted = "committed"

	maxBatch = 200 // descriptors per message
	// maxBatchesAhead batches may be sent before the first is acknowledged: the parent
	// exports while the child adopts, which halves the handover on two cores.
	maxBatchesAhead = 8
	// The child resumes adopted connections in waves: the requests that queued up in
	// their sockets during the handover would otherwise all arrive in one instant, on a
	// process whose backend pools are still cold, past the admission limit. A wave waits
	// (a few gaps at most) while half the admission limit is in flight.
	resumeWave     = 250
	resumeWaveGap  = 2 * time.Millisecond
	resumeMaxWaits = 10
	// maxMsg bounds one packet; a batch is sent before its JSON would pass batchBytes.
	maxMsg     = 64 << 10
	batchBytes = 48 << 10
	// maxMovePending: a connection holding more unconsumed bytes than this is not moved
	// (it would not fit a message); it stays and is drained here with GOAWAY.
	maxMovePending = 16 << 10

	upgradeReadyTimeout = 60 * time.Second // the new binary starting up
	upgradeQuietTimeout = 10 * time.Second // a paused connection finishing its requests
	// pauseAhead connections are paused and not yet handed over at any time.
	pauseAhead         = 1000
	upgradeStepTimeout = 10 * time.Second // one ack or the COMMITTED
)

type upgradeMsg struct {
	Type     string      `json:"t"`
	Conns    []connState `json:"c,omitempty"`
	Rejected []int       `json:"r,omitempty"`
}

// Inherit is what a process started by a hot upgrade got from its parent.
type Inherit struct {
	Sock int            // the handover socket
	FDs  map[string]int // listening sockets by listener name; "@admin", "@health"
}

// InheritFromEnv reads the descriptors an upgrading parent passed, or returns nil when
// this process was not started by an upgrade. It clears the variables, so a later upgrade
// of this process passes its own.
func InheritFromEnv() (*Inherit, error) {
	v := os.Getenv(envUpgradeFD)
	if v == "" {
		return nil, nil
	}
	defer os.Unsetenv(envUpgradeFD)
	defer os.Unsetenv(envInherit)
	return parseInherit(v, os.Getenv(envInherit))
}

// parseInherit reads MGW_UPGRADE_FD and MGW_INHERIT (name=fd,...).
func parseInherit(sockV, list string) (*Inherit, error) {
	sock, err := strconv.Atoi(sockV)
	if err != nil || sock < 3 {
		return nil, fmt.Errorf("%s=%q: not a descriptor number", envUpgradeFD, sockV)
	}
	in := &Inherit{Sock: sock, FDs: map[string]int{}}
	for _, kv := range strings.Split(list, ",") {
		if kv == "" {
			continue
		}
		name, fdS, ok := strings.Cut(kv, "=")
		fd, err := strconv.Atoi(fdS)
		if !ok || name == "" || err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: entry %q is not name=fd", envInherit, kv)
		}
		in.FDs[name] = fd
	}
	return in, nil
}

// inheritedFD is the listening socket inherited for name, or 0 (bind anew).
func (g *Gateway) inheritedFD(name string) int {
	if g.opts.Inherit == nil {
		return 0
	}
	return g.opts.Inherit.FDs[name]
}

// inheritedFor is inheritedFD for a listener configured at listen, or 0 when the
// inherited socket is bound elsewhere: the new config moved the listener, so it binds
// anew (and the old address goes when the old process exits).
func (g *Gateway) inheritedFor(name, listen string) int {
	fd := g.inheritedFD(name)
	if fd <= 0 || strings.HasPrefix(listen, "unix:") {
		return fd
	}
	want, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return 0
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0
	}
	var got netip.AddrPort
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		got = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		got = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	wantAP := want.AddrPort()
	samePort := want.Port == 0 || int(got.Port()) == want.Port
	sameIP := want.IP == nil || wantAP.Addr().Unmap() == got.Addr() ||
		(wantAP.Addr().Unmap().IsUnspecified() && got.Addr().IsUnspecified())
	if samePort && sameIP {
		return fd
	}
	g.log.Warn("upgrade: the config moved a listener; binding anew instead of inheriting", "listener", name,
		"inherited", got.String(), "listen", listen)
	return 0
}

// decodeUpgradeMsg decodes one handover message and checks what the receiver relies on.
func decodeUpgradeMsg(b []byte) (*upgradeMsg, error) {
	var m upgradeMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("handover: decode message of %d bytes: %w", len(b), err)
	}
	switch m.Type {
	case msgReady, msgBatch, msgAck, msgCommit, msgCommitted:
	default:
		return nil, fmt.Errorf("handover: message type %q is unknown", m.Type)
	}
	if len(m.Conns) > maxBatch {
		return nil, fmt.Errorf("handover: %s carries %d connections, over %d", m.Type, len(m.Conns), maxBatch)
	}
	return &m, nil
}

// handoverConn is one end of the handover socket.
type handoverConn struct{ uc *net.UnixConn }

func newHandoverConn(fd int) (*handoverConn, error) {
	f := os.NewFile(uintptr(fd), "upgrade")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("handover socket fd %d: %w", fd, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("handover socket fd %d is a %T, not a unix socket", fd, c)
	}
	return &handoverConn{uc: uc}, nil
}

func (h *handoverConn) send(m *upgradeMsg, fds []int, timeout time.Duration) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("handover: encode %s: %w", m.Type, err)
	}
	if len(b) > maxMsg {
		return fmt.Errorf("handover: %s message of %d bytes is over %d", m.Type, len(b), maxMsg)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	h.uc.SetWriteDeadline(time.Now().Add(timeout))
	if _, _, err := h.uc.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("handover: send %s: %w", m.Type, err)
	}
	return nil
}

// recv reads one message and the descriptors that came with it (which the caller then
// owns). timeout <= 0 waits for as long as it takes.
func (h *handoverConn) recv(timeout time.Duration) (*upgradeMsg, []int, error) {
	if timeout > 0 {
		h.uc.SetReadDeadline(time.Now().Add(timeout))
	} else {
		h.uc.SetReadDeadline(time.Time{})
	}
	buf := make([]byte, maxMsg+1)
	oob := make([]byte, unix.CmsgSpace(maxBatch*4))
	n, oobn, flags, _, err := h.uc.ReadMsgUnix(buf, oob)
	var fds []int
	if oobn > 0 {
		cms, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, nil, fmt.Errorf("handover: control message: %w", perr)
		}
		for i := range cms {
			got, perr := unix.ParseUnixRights(&cms[i])
			if perr == nil {
				fds = append(fds, got...)
			}
		}
	}
	fail := func(err error) (*upgradeMsg, []int, error) {
		closeFDs(fds)
		return nil, nil, err
	}
	switch {
	case err != nil:
		return fail(fmt.Errorf("handover: receive: %w", err))
	case n == 0:
		return fail(fmt.Errorf("handover: receive: %w (the other process closed the socket)", io.EOF))
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return fail(fmt.Errorf("handover: receive: message truncated (flags %#x)", flags))
	}
	m, err := decodeUpgradeMsg(buf[:n])
	if err != nil {
		return fail(err)
	}
	return m, fds, nil
}

func (h *handoverConn) close() { h.uc.Close() }

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// UpgradeResult is what an upgrade did, as POST /v1/upgrade answers it.
type UpgradeResult struct {
	ChildPID int `json:"child_pid"`
	// Migrated connections are the new process's now; Stayed ones could not move (busy
	// past the deadline, too many unconsumed bytes, refused by the new process) and are
	// drained here with GOAWAY.
	Migrated   int     `json:"migrated"`
	Stayed     int     `json:"stayed"`
	Seconds    float64 `json:"seconds"`
	Engine     string  `json:"engine"`
	Listeners  int     `json:"listeners"`
	AdminMoved bool    `json:"admin_moved"`
}

// upgradeChild is the new process as its parent sees it.
type upgradeChild struct {
	pid    int
	proc   *os.Process
	exited chan struct{}
	hc     *handoverConn
	msgs   chan childMsg // from the one reader of hc (readMsgs)
	nlist  int
	admin  bool
}

type childMsg struct {
	m   *upgradeMsg
	err error
}

// readMsgs is the parent's only reader of the handover socket, so that batches can be
// sent while earlier ones are being adopted (at most maxBatchesAhead unacknowledged: the
// channel never fills, and the child never blocks on an ack nobody reads).
func (c *upgradeChild) readMsgs() {
	for {
		m, fds, err := c.hc.recv(0)
		closeFDs(fds)
		c.msgs <- childMsg{m, err}
		if err != nil {
			return
		}
	}
}

// next waits for the child's next message, of type want.
func (c *upgradeChild) next(want string, timeout time.Duration) (*upgradeMsg, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.msgs:
		if r.err == nil && r.m.Type != want {
			r.err = fmt.Errorf("handover: expected %s, got %q", want, r.m.Type)
		}
		return r.m, r.err
	case <-t.C:
		return nil, fmt.Errorf("handover: no %s from the new process within %s", want, timeout)
	}
}

// kill ends the child (if it still runs) and waits for it, so nothing it adopted can be
// served by it any more.
func (c *upgradeChild) kill() {
	c.proc.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
	}
	c.hc.close()
}

// dupListenerFD duplicates a net.Listener's socket without File(), whose *os.File would
// flip the socket (shared with every process holding it) to blocking mode on Fd().
func dupListenerFD(ln net.Listener) (int, error) {
	if u, ok := ln.(*unixListener); ok {
		ln = u.Listener
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("listener %T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return nfd, derr
}

// startChild starts the new binary with the handover socket at fd 3 and every listening
// socket after it. syscall.ForkExec takes raw descriptors: os/exec's ExtraFiles would
// call Fd() on them and make the shared sockets blocking.
func (g *Gateway) startChild() (*upgradeChild, error) {
	bin := g.Config().Runtime.UpgradeBinary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("runtime.upgrade_binary is empty and the running binary's path is unknown: %w", err)
		}
	}
	pair, err := handoverPair()
	if err != nil {
		return nil, fmt.Errorf("handover socketpair: %w", err)
	}
	passed := []int{pair[1]}
	defer func() { closeFDs(passed) }()
	files := []uintptr{0, 1, 2, uintptr(pair[1])}
	var inherit []string
	add := func(name string, fd int) {
		passed = append(passed, fd)
		inherit = append(inherit, name+"="+strconv.Itoa(len(files)))
		files = append(files, uintptr(fd))
	}
	g.mu.Lock()
	ls, eng, adminLn, healthLn := g.listeners, g.engine, g.adminLn, g.healthLn
	g.mu.Unlock()
	lf, ok := eng.(netpoll.ListenerFDer)
	if !ok {
		unix.Close(pair[0])
		return nil, fmt.Errorf("engine %T cannot pass its listeners on", eng)
	}
	for _, l := range ls {
		fd, err := lf.ListenerFD(l.cfg.Name)
		if err != nil {
			unix.Close(pair[0])
			return nil, err
		}
		add(l.cfg.Name, fd)
	}
	child := &upgradeChild{nlist: len(ls), exited: make(chan struct{})}
	for name, ln := range map[string]net.Listener{"@admin": adminLn, "@health": healthLn} {
		if ln == nil {
			continue
		}
		fd, err := dupListenerFD(ln)
		if err != nil {
			unix.Close(pair[0])
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
		add(name, fd)
		child.admin = child.admin || name == "@admin"
	}
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envUpgradeFD+"=") && !strings.HasPrefix(kv, envInherit+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, envUpgradeFD+"=3", envInherit+"="+strings.Join(inherit, ","))
	pid, err := syscall.ForkExec(bin, os.Args, &syscall.ProcAttr{Env: env, Files: files})
	if err != nil {
		unix.Close(pair[0])
		return nil, fmt.Errorf("starting %s (runtime.upgrade_binary): %w", bin, err)
	}
	child.pid = pid
	child.proc, _ = os.FindProcess(pid)
	go func() {
		child.proc.Wait()
		close(child.exited)
	}()
	if child.hc, err = newHandoverConn(pair[0]); err != nil {
		child.proc.Signal(syscall.SIGKILL)
		return nil, err
	}
	child.msgs = make(chan childMsg, maxBatchesAhead+2)
	go child.readMsgs()
	return child, nil
}

// moving is a connection the upgrade moves.
type moving struct {
	c     netpoll.Conn
	s     movable
	since time.Time // when the handover paused it
}

// pausedServer is an admin or health server whose listener was closed for the handover,
// with a duplicate of its socket to serve again on a rollback.
type pausedServer struct {
	srv  *http.Server
	fd   int
	unix *net.UnixAddr
	set  func(net.Listener)
}

// pauseServer stops srv accepting on ln (its open connections go on) and keeps a
// duplicate of the socket. A unix socket's path is left in place: the new process
// answers on it.
func pauseServer(srv *http.Server, ln net.Listener, set func(net.Listener)) (*pausedServer, error) {
	fd, err := dupListenerFD(ln)
	if err != nil {
		return nil, err
	}
	p := &pausedServer{srv: srv, fd: fd, set: set}
	if u, ok := ln.(*unixListener); ok {
		p.unix = u.addr
		u.Listener.Close()
	} else {
		ln.Close()
	}
	return p, nil
}

// resume serves again on the kept socket (a rollback).
func (p *pausedServer) resume() error {
	f := os.NewFile(uintptr(p.fd), "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return err
	}
	if p.unix != nil {
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln = &unixListener{Listener: ln, addr: p.unix}
	}
	p.set(ln)
	go p.srv.Serve(ln)
	return nil
}

func (p *pausedServer) release() { unix.Close(p.fd) }

// Upgrade hands this process's listeners and connections to a new process (the same
// binary by default, runtime.upgrade_binary otherwise). On success the connections that
// moved are closed here quietly and the caller should Drain what stayed and exit; on an
// error the gateway goes on serving everything, as before.
func (g *Gateway) Upgrade() (UpgradeResult, error) {
	if !g.upgrading.CompareAndSwap(false, true) {
		return UpgradeResult{}, errors.New("upgrade: one is already in progress or done")
	}
	start := time.Now()
	res := UpgradeResult{Engine: g.Config().Engine}
	fail := func(err error) (UpgradeResult, error) {
		g.m.upgradeRollbacks.Inc()
		g.upgrading.Store(false)
		g.log.Error("upgrade failed; this process keeps serving every connection", "err", err,
			"child_pid", res.ChildPID, "took", time.Since(start).Round(time.Millisecond))
		return res, err
	}
	child, err := g.startChild()
	if err != nil {
		return fail(err)
	}
	res.ChildPID, res.Listeners, res.AdminMoved = child.pid, child.nlist, child.admin
	g.log.Info("upgrade: new process started", "child_pid", child.pid)
	if _, err := child.next(msgReady, upgradeReadyTimeout); err != nil {
		child.kill()
		return fail(fmt.Errorf("upgrade: new process %d did not get ready: %w", child.pid, err))
	}
	g.log.Info("upgrade: new process ready; both accept on the listening sockets", "child_pid", child.pid)

	mig, ok := g.engine.(netpoll.Migrator)
	var list []*moving // paused by the handover: what a rollback resumes
	var paused []*pausedServer
	rollback := func(err error) (UpgradeResult, error) {
		child.kill()
		for _, mv := range list {
			mv.s.base().migrating.Store(false)
			mig.Reclaim(mv.c)
			mv.s.unhold()
		}
		if mig != nil {
			mig.ResumeAccept()
		}
		for _, p := range paused {
			if rerr := p.resume(); rerr != nil {
				g.log.Error("upgrade rollback: serving the admin API again", "err", rerr)
			}
		}
		res.Migrated, res.Stayed = 0, 0
		return fail(err)
	}
	if ok {
		mig.PauseAccept()
		g.mu.Lock()
		srvs := []struct {
			srv *http.Server
			ln  net.Listener
			set func(net.Listener)
		}{
			{g.admin, g.adminLn, func(ln net.Listener) { g.mu.Lock(); g.adminLn = ln; g.mu.Unlock() }},
			{g.health, g.healthLn, func(ln net.Listener) { g.mu.Lock(); g.healthLn = ln; g.mu.Unlock() }},
		}
		g.mu.Unlock()
		for _, s := range srvs {
			if s.srv == nil || s.ln == nil {
				continue
			}
			p, err := pauseServer(s.srv, s.ln, s.set)
			if err != nil {
				return rollback(fmt.Errorf("upgrade: pausing the admin API: %w", err))
			}
			paused = append(paused, p)
		}
	} else {
		g.log.Warn("upgrade: engine cannot hand connections over; they are drained here with GOAWAY", "engine", res.Engine)
	}
	var all []*moving
	if mig != nil {
		g.engine.Range(func(c netpoll.Conn) bool {
			if s := sessionOf(c); s != nil {
				all = append(all, &moving{c: c, s: s})
			}
			return true
		})
	}
	moved, stayed, err := g.handOver(child, mig, all, &list)
	if err != nil {
		return rollback(err)
	}
	if err := child.hc.send(&upgradeMsg{Type: msgCommit}, nil, upgradeStepTimeout); err != nil {
		return rollback(err)
	}
	if _, err := child.next(msgCommitted, upgradeStepTimeout); err != nil {
		return rollback(fmt.Errorf("upgrade: commit: %w", err))
	}
	// Committed: the new process serves the moved connections. Close our copies with
	// close(2) alone, and serve what stayed until the caller's drain.
	child.hc.close()
	for _, mv := range moved {
		mv.c.CloseWithReason(netpoll.ReasonMigrated)
	}
	for _, mv := range stayed {
		mv.s.base().migrating.Store(false)
		mig.Reclaim(mv.c)
		mv.s.unhold()
	}
	for _, p := range paused {
		p.release()
	}
	res.Migrated, res.Stayed = len(moved), len(stayed)
	res.Seconds = time.Since(start).Seconds()
	g.m.upgradeMigrated.Add(len(moved))
	g.m.upgradeFailed.Add(len(stayed))
	g.log.Info("upgrade committed: the new process serves the listeners and the moved connections",
		"child_pid", child.pid, "migrated", len(moved), "stayed", len(stayed),
		"took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// handOver pauses the connections of all a window at a time (so those still waiting
// their turn are served meanwhile, and fewer requests queue up in sockets during the
// handover), sends each that becomes quiet within upgradeQuietTimeout to the child in
// batches, and returns those the child adopted and those that stay. Each connection it
// pauses is appended to paused. An error means the handover broke and must be rolled
// back.
func (g *Gateway) handOver(child *upgradeChild, mig netpoll.Migrator, all []*moving, paused *[]*moving) (moved, stayed []*moving, err error) {
	var batch []*moving
	var states []connState
	var fds []int
	size := 0
	var sent [][]*moving // batches sent and not yet acknowledged, oldest first
	ack := func() error {
		m, err := child.next(msgAck, upgradeStepTimeout)
		if err != nil {
			return err
		}
		refused := make(map[int]bool, len(m.Rejected))
		for _, i := range m.Rejected {
			refused[i] = true
		}
		for i, mv := range sent[0] {
			if refused[i] {
				stayed = append(stayed, mv)
			} else {
				moved = append(moved, mv)
			}
		}
		sent = sent[1:]
		return nil
	}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for len(sent) >= maxBatchesAhead {
			if err := ack(); err != nil {
				return err
			}
		}
		err := child.hc.send(&upgradeMsg{Type: msgBatch, Conns: states}, fds, upgradeStepTimeout)
		closeFDs(fds) // the child has its own copies now (or the send failed)
		sent = append(sent, batch)
		batch, states, fds, size = nil, states[:0], fds[:0], 0
		return err
	}
	var remaining []*moving // paused, not exported yet
	next, busy := 0, 0
	for {
		for ; len(remaining) < pauseAhead && next < len(all); next++ {
			mv := all[next]
			mv.s.base().migrating.Store(true)
			mv.s.hold()
			mv.since = time.Now()
			*paused = append(*paused, mv)
			remaining = append(remaining, mv)
		}
		if len(remaining) == 0 {
			break
		}
		var later []*moving
		for _, mv := range remaining {
			st, fd, out := exportConn(mig, mv)
			switch out {
			case exportLater:
				if time.Since(mv.since) > upgradeQuietTimeout {
					busy++
					stayed = append(stayed, mv)
					continue
				}
				later = append(later, mv)
			case exportStay:
				stayed = append(stayed, mv)
			case exportOK:
				batch, states, fds = append(batch, mv), append(states, st), append(fds, fd)
				size += 200 + len(st.Pending)*4/3
				if len(batch) == maxBatch || size > batchBytes {
					if err := flush(); err != nil {
						return nil, nil, err
					}
				}
			}
		}
		if err := flush(); err != nil {
			return nil, nil, err
		}
		if len(later) > 0 && len(later) == len(remaining) {
			time.Sleep(2 * time.Millisecond) // no progress: wait for answers to be written
		}
		remaining = later
		if child.gone() {
			return nil, nil, fmt.Errorf("upgrade: new process %d exited during the handover", child.pid)
		}
	}
	for len(sent) > 0 {
		if err := ack(); err != nil {
			return nil, nil, err
		}
	}
	if busy > 0 {
		g.log.Warn("upgrade: connections still busy after the quiet timeout stay here and are drained",
			"count", busy, "timeout", upgradeQuietTimeout)
	}
	return moved, stayed, nil
}

func (c *upgradeChild) gone() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

type exportOutcome uint8

const (
	exportLater exportOutcome = iota // not quiet yet
	exportOK
	exportStay // cannot move: drained here
	exportGone // closed meanwhile
)

// exportConn takes a paused connection's socket and state once it is quiet. The session
// is checked again after Export: a worker that was inside OnData when reads were paused
// may have taken a request before Export saw the connection unowned.
func exportConn(mig netpoll.Migrator, mv *moving) (connState, int, exportOutcome) {
	if mv.c.Closed() {
		return connState{}, -1, exportGone
	}
	if !mv.s.quiet() || mv.c.QueuedBytes() > 0 {
		return connState{}, -1, exportLater
	}
	h, err := mig.Export(mv.c)
	switch {
	case errors.Is(err, netpoll.ErrNotQuiet):
		return connState{}, -1, exportLater
	case errors.Is(err, netpoll.ErrClosed):
		return connState{}, -1, exportGone
	case err != nil:
		return connState{}, -1, exportStay
	}
	if !mv.s.quiet() {
		unix.Close(h.FD)
		mig.Reclaim(mv.c)
		return connState{}, -1, exportLater
	}
	if len(h.Pending) > maxMovePending {
		unix.Close(h.FD)
		mig.Reclaim(mv.c)
		return connState{}, -1, exportStay
	}
	st := mv.s.state()
	st.Pending = h.Pending
	return st, h.FD, exportOK
}

// adoptFromParent is the new process's side of the handover, run once it serves: READY,
// then adopt each batch (paused), then on COMMIT resume them all.
func (g *Gateway) adoptFromParent(in *Inherit) {
	hc, err := newHandoverConn(in.Sock)
	if err != nil {
		g.log.Error("upgrade: no handover socket; serving without the old connections", "err", err)
		return
	}
	defer hc.close()
	exitAt := os.Getenv(envUpgradeTestExit)
	start := time.Now()
	if err := hc.send(&upgradeMsg{Type: msgReady}, nil, upgradeStepTimeout); err != nil {
		g.log.Error("upgrade: telling the old process we are ready", "err", err)
		return
	}
	if exitAt == "after_ready" {
		g.log.Warn("upgrade: test hook " + envUpgradeTestExit + "=after_ready: exiting")
		os.Exit(3)
	}
	mig, _ := g.engine.(netpoll.Migrator)
	var adopted []netpoll.Conn
	resume := func() {
		for i, c := range adopted {
			if s := sessionOf(c); s != nil {
				s.base().migrating.Store(false)
			}
			c.ResumeRead()
			if (i+1)%resumeWave == 0 {
				time.Sleep(resumeWaveGap)
				for w := 0; w < resumeMaxWaits && g.adm.inFlight.Load() > g.adm.limit.Load()/2; w++ {
					time.Sleep(resumeWaveGap)
				}
			}
		}
		g.inherited.Add(int64(len(adopted)))
	}
	for {
		m, fds, err := hc.recv(0)
		if err != nil {
			// The old process kills us before it rolls back, so a broken socket while we
			// live means it is gone: the connections we hold have no other owner.
			g.log.Warn("upgrade: the old process went away before COMMIT; serving what it handed over", "err", err, "adopted", len(adopted))
			resume()
			return
		}
		switch m.Type {
		case msgBatch:
			var rejected []int
			for i := range m.Conns {
				st := &m.Conns[i]
				if i >= len(fds) || mig == nil {
					rejected = append(rejected, i)
					continue
				}
				c, err := mig.Adopt(st.Listener, fds[i], st.Pending)
				if err != nil {
					unix.Close(fds[i])
					g.log.Warn("upgrade: could not adopt a connection; the old process keeps it", "listener", st.Listener, "err", err)
					rejected = append(rejected, i)
					continue
				}
				if s := sessionOf(c); s != nil {
					s.base().migrating.Store(true)
					s.restore(st)
				}
				adopted = append(adopted, c)
			}
			if len(fds) > len(m.Conns) {
				closeFDs(fds[len(m.Conns):])
			}
			if exitAt == "after_batch" {
				g.log.Warn("upgrade: test hook "+envUpgradeTestExit+"=after_batch: exiting", "adopted", len(adopted))
				os.Exit(3)
			}
			if err := hc.send(&upgradeMsg{Type: msgAck, Rejected: rejected}, nil, upgradeStepTimeout); err != nil {
				g.log.Error("upgrade: ack", "err", err)
			}
		case msgCommit:
			// COMMITTED first: until the old process hears it, it may still roll back
			// (killing us), so nothing is read from a moved connection before.
			if err := hc.send(&upgradeMsg{Type: msgCommitted}, nil, upgradeStepTimeout); err != nil {
				g.log.Error("upgrade: committed", "err", err)
			}
			// The requests the pause held back come in the first moments: at 18,000
			// connections, the floor's 128 refused a few dozen of them with 503.
			g.adm.absorb(int64(len(adopted)))
			resume()
			g.log.Info("upgrade: took over from the old process", "inherited_connections", len(adopted),
				"took", time.Since(start).Round(time.Millisecond))
			return
		default:
			closeFDs(fds)
			g.log.Warn("upgrade: unexpected handover message", "type", m.Type)
		}
	}
}

// Upgraded is closed once an upgrade requested through the admin API committed and its
// answer was written: the program running the gateway then drains it and exits.
func (g *Gateway) Upgraded() <-chan struct{} { return g.upgraded }

func (g *Gateway) markUpgraded() { g.upgradedOnce.Do(func() { close(g.upgraded) }) }

// serveUpgrade is POST /v1/upgrade: it answers once the handover committed or rolled back.
func (g *Gateway) serveUpgrade(w http.ResponseWriter, _ *http.Request) {
	res, err := g.Upgrade()
	if err != nil {
		writeAdminErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Connection", "close")
	writeJSON(w, res)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	g.markUpgraded()
}

// inheritedListener is the admin or health listener passed on by an upgrading parent,
// or nil when there is none. listen is the configured address, for a unix socket's name.
func (g *Gateway) inheritedListener(key, listen string) (net.Listener, error) {
	fd := g.inheritedFor(key, listen)
	if fd <= 0 {
		return nil, nil
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("inherited %s fd %d: %w", key, fd, err)
	}
	f := os.NewFile(uintptr(nfd), key)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited %s fd %d: %w", key, fd, err)
	}
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		if u, ok := ln.(*net.UnixListener); ok {
			u.SetUnlinkOnClose(false)
		}
		return &unixListener{Listener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
	}
	return ln, nil
}
