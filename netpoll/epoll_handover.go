//go:build linux

package netpoll

import (
	"fmt"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

var _ Migrator = (*epollEngine)(nil)

func (e *epollEngine) listenerList() []*elistener {
	e.lmu.RLock()
	defer e.lmu.RUnlock()
	ls := make([]*elistener, 0, len(e.listeners))
	for _, l := range e.listeners {
		ls = append(ls, l)
	}
	return ls
}

func (e *epollEngine) listenerNamed(name string) *elistener {
	for _, l := range e.listenerList() {
		if l.own.name == name {
			return l
		}
	}
	return nil
}

// PauseAccept holds every listener: its accept loop stops before its next accept4 and
// leaves the listening socket un-armed. Taking amu waits out a batch in progress, so no
// connection is opened after PauseAccept returns.
func (e *epollEngine) PauseAccept() {
	for _, l := range e.listenerList() {
		l.held.Store(true)
		l.amu.Lock()
		l.amu.Unlock() //nolint:staticcheck // an empty critical section: waits for the batch
	}
}

// ResumeAccept lets held listeners accept again; the wake runs a batch, which re-arms.
func (e *epollEngine) ResumeAccept() {
	for _, l := range e.listenerList() {
		if l.held.Swap(false) {
			l.wake()
		}
	}
}

func (e *epollEngine) ListenerFD(name string) (int, error) {
	l := e.listenerNamed(name)
	if l == nil {
		return -1, fmt.Errorf("listener %q: not listening", name)
	}
	fd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("listener %q: dup: %w", name, err)
	}
	return fd, nil
}

func (e *epollEngine) Export(conn Conn) (Handover, error) {
	c, ok := conn.(*econn)
	if !ok || c.eng() != e {
		return Handover{}, fmt.Errorf("export: connection is not this engine's")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.afterFlush || c.eof {
		return Handover{}, fmt.Errorf("export conn %d: %w", c.id, ErrClosed)
	}
	// Not busy under mu: no worker holds pend or reads the fd, and with reads paused none
	// will start (only a dead socket's HUP/ERR is served while paused).
	if c.busy || c.inTimeout || c.pauses == 0 || c.wq != nil || !c.registered {
		return Handover{}, fmt.Errorf("export conn %d: %w", c.id, ErrNotQuiet)
	}
	fd, err := unix.FcntlInt(uintptr(c.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return Handover{}, fmt.Errorf("export conn %d: dup: %w", c.id, err)
	}
	h := Handover{FD: fd}
	if c.pend != nil && len(c.pend.B) > 0 {
		h.Pending = append([]byte(nil), c.pend.B...)
	}
	c.exported = true
	return h, nil
}

func (e *epollEngine) Reclaim(conn Conn) {
	if c, ok := conn.(*econn); ok {
		c.mu.Lock()
		c.exported = false
		c.mu.Unlock()
	}
}

func (e *epollEngine) Adopt(listener string, fd int, pending []byte) (Conn, error) {
	if e.closing.Load() {
		return nil, ErrEngineClosed
	}
	l := e.listenerNamed(listener)
	if l == nil {
		return nil, fmt.Errorf("adopt: no listener %q", listener)
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || v != unix.SOCK_STREAM {
		return nil, fmt.Errorf("adopt: fd %d is not a stream socket (type %d, %v)", fd, v, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("adopt: fd %d: set non-blocking: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return nil, fmt.Errorf("adopt: fd %d: getpeername: %w", fd, err)
	}
	own := l.own
	c := &econn{fd: int32(fd), gen: e.newGen(), id: e.nextID.Add(1), own: own, pidx: e.pickIdx()}
	c.busy, c.opened, c.pauses = true, true, 1
	c.rip, c.rport = rawAddr(peer)
	if ls, err := unix.Getsockname(fd); err == nil {
		c.setLocal(ls)
	}
	c.lastActive.Store(e.tick.Load())
	c.idleTicks.Store(ticksFor(own.idle, e.cfg.TimerTick))
	if len(pending) > 0 {
		// Kept as an incomplete frame is: ResumeRead sees pendSince and redelivers it.
		b := &bytebufferpool.ByteBuffer{B: append(make([]byte, 0, len(pending)), pending...)}
		c.pend = b
		c.pendSince.Store(e.tick.Load())
		e.ctr.pendingBytes.Add(int64(len(pending)))
	}
	if !e.table.put(c) {
		if c.pend != nil {
			e.ctr.pendingBytes.Add(-int64(len(c.pend.B)))
		}
		return nil, fmt.Errorf("adopt: fd %d beyond the open-file limit", fd)
	}
	e.ctr.open.Add(1)
	e.ctr.adopted.Add(1)
	l.open.Add(1)
	if !callSafely("OnOpen", c.id, func() { own.h.OnOpen(c) }) {
		// Quietly: the socket is still the other process's too, and it keeps it.
		c.CloseWithReason(ReasonMigrated)
		c.register()
		return nil, fmt.Errorf("adopt: fd %d: OnOpen panicked", fd)
	}
	c.register()
	return c, nil
}
