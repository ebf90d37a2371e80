//go:build linux

package netpoll

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	epollIn    = unix.EPOLLIN
	epollOut   = unix.EPOLLOUT
	epollRdHup = unix.EPOLLRDHUP
	epollHup   = unix.EPOLLHUP
	epollErr   = unix.EPOLLERR
	epollET    = unix.EPOLLET
)

// poller is one epoll instance and the one goroutine that waits on it. It never does
// connection I/O: it only maps events to connections and hands them to the worker pool.
//
// It does not sit in a blocking epoll_wait. The epoll fd is itself pollable, so the loop
// parks on it in Go's runtime netpoller (epf) and collects events with a non-blocking
// epoll_wait once the runtime says some are there. A thread blocked in a syscall would
// make sysmon hand its P to another thread on every wait (measured: 3-5 handoffs per
// request); a parked goroutine costs the scheduler nothing.
type poller struct {
	eng    *epollEngine
	epfd   int
	epf    *os.File        // epfd as the runtime poller knows it; closing it ends a park
	rc     syscall.RawConn // epf's, for the park-then-collect loop
	wakefd int             // eventfd: wakes the loop for shutdown
	batch  []*econn        // handle's: the connections of one batch of events, taken
	done   chan struct{}
	ctls   atomic.Uint64 // epoll_ctl calls, for tests: the steady state makes none
	seenAt atomic.Uint32 // micros of the last batch of events: one clock read per batch
}

func newPoller(e *epollEngine) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile hands the fd to the runtime poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd: set non-blocking: %w", err)
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	rc, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		epf.Close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &poller{eng: e, epfd: epfd, epf: epf, rc: rc, wakefd: wfd, done: make(chan struct{})}
	// Generation 0 marks non-connection fds (the eventfd, listeners).
	if err := p.add(wfd, 0, unix.EPOLLIN); err != nil {
		p.closeFDs()
		return nil, err
	}
	return p, nil
}

// closeFDs releases the epoll fd (through the runtime, which forgets it first, so it never
// polls an fd that may be reused) and the eventfd. Only after the loop has returned.
func (p *poller) closeFDs() {
	_ = p.epf.Close()
	unix.Close(p.wakefd)
}

func (p *poller) ctl(op, fd int, gen uint32, mask uint32) error {
	// The event data carries fd and generation only: never a Go pointer.
	p.ctls.Add(1)
	ev := unix.EpollEvent{Events: mask, Fd: int32(fd), Pad: int32(gen)}
	if err := unix.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl op %d fd %d: %w", op, fd, err)
	}
	return nil
}

func (p *poller) add(fd int, gen uint32, mask uint32) error {
	return p.ctl(unix.EPOLL_CTL_ADD, fd, gen, mask)
}

func (p *poller) mod(fd int, gen uint32, mask uint32) error {
	return p.ctl(unix.EPOLL_CTL_MOD, fd, gen, mask)
}

// epollWaitNow collects ready events without waiting, and without the runtime's syscall
// bookkeeping (as rawsys_linux.go's socket calls): entersyscall wakes sysmon whenever it
// sleeps because the P was idle, and an awake sysmon polls every 20 us for a millisecond
// after. On a one-P gateway that idles between batches, that was a sysmon wake-up per
// batch and about 3,000 context switches a second (perf sched_switch, wrk -c64: 1,280
// wake-ups from entersyscallWakeSysmon and 6,745 sysmon sleeps in 2 s).
func epollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (p *poller) wake() {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.wakefd, one[:])
}

// loop serves the epoll fd until the engine closes. It parks in the runtime netpoller
// (epf) and, each time the runtime says the epoll fd is readable, collects the ready
// events with a non-blocking epoll_wait and hands them out.
//
// All of that happens inside one RawConn.Read call, whose function returns false to park
// again: Read resets the descriptor's readiness only once, as it starts, so an edge that
// comes while events are being handed out is kept and ends the next park at once.
// Leaving Read after every batch would cost a second epoll_wait per wake-up: the one
// that must follow the reset to catch such an edge (two per request at low load). Read
// is left only at shutdown. Connections left waiting in the ready queue are the queue's
// alarm's to look after, not the poller's.
func (p *poller) loop() {
	defer close(p.done)
	e := p.eng
	events := make([]unix.EpollEvent, 256)
	_ = p.rc.Read(func(fd uintptr) bool {
		for {
			n, werr := epollWaitNow(int(fd), events)
			if werr == unix.EINTR {
				continue
			}
			if werr != nil {
				return true // EBADF and the like: the fd is going away
			}
			if n > 0 {
				p.seenAt.Store(e.micros())
			}
			if p.handle(events[:n]) {
				return true // the engine is closing
			}
			if n < len(events) {
				return false // park; a full batch goes on: more may be ready, and no new edge would say so
			}
		}
	})
}

// handle hands each event to its connection (or listener); it reports true when the
// engine is closing.
func (p *poller) handle(events []unix.EpollEvent) (stop bool) {
	e := p.eng
	batch := p.batch[:0]
	defer func() {
		e.dispatchBatch(batch)
		clear(batch)
		p.batch = batch[:0]
	}()
	for i := range events {
		ev := &events[i]
		fd, gen := int(ev.Fd), uint32(ev.Pad)
		if gen == 0 {
			if fd == p.wakefd {
				var buf [8]byte
				_, _ = unix.Read(p.wakefd, buf[:])
				if e.closing.Load() {
					return true
				}
			} else if l := e.listenerByFD(fd); l != nil {
				l.wake()
			}
			continue
		}
		c := e.table.get(fd)
		if c == nil || c.gen != gen {
			continue // stale: the connection closed and the fd may be someone else's now
		}
		if c.ready(ev.Events) {
			batch = append(batch, c)
		}
	}
	return false
}

// ready is called by the poller for an edge on c. It reports true when c is to go to
// exactly one worker (the poller's batch); false when a worker owns c already or c
// cannot act on it now: then it is owed, and served when c can (see econn).
func (c *econn) ready(events uint32) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if c.connectEndedLocked() {
		c.mu.Unlock()
		return true
	}
	if c.wq == nil {
		// Room to write matters only with writes queued; a write that queues later hit a
		// full socket, whose next room makes a new edge.
		events &^= epollOut
	}
	if events&(epollIn|epollRdHup) != 0 && c.owed&(epollIn|epollRdHup) == 0 &&
		(!c.busy || c.revents&(epollIn|epollRdHup) == 0) {
		// The first unread bytes: their wait for a worker starts with this batch. A serve
		// taken for bytes (queued or running) keeps its older stamp, and letGoLocked
		// stamps what it leaves; one taken for room to write reads too when it can, so it
		// takes this stamp. Bytes held back (paused, the write queue over its soft limit,
		// over a budget) are stamped again when reading resumes: ResumeRead, the budget's
		// sweep, or the serve whose flush frees them.
		c.readyAt.Store(c.poller().seenAt.Load())
	}
	c.owed |= uint16(events) // epoll reports nothing above bit 15 (econn.owed)
	taken := c.takeLocked()
	c.mu.Unlock()
	return taken
}
