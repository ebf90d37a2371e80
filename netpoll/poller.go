package netpoll

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

const (
	epollIn      = unix.EPOLLIN
	epollOut     = unix.EPOLLOUT
	epollRdHup   = unix.EPOLLRDHUP
	epollOneShot = unix.EPOLLONESHOT
)

// poller is one epoll instance and the one goroutine that waits on it. It never blocks on
// anything but epoll_wait and never does connection I/O: it only maps events to
// connections and hands them to the worker pool.
type poller struct {
	eng    *epollEngine
	epfd   int
	wakefd int // eventfd: wakes the loop for shutdown
	done   chan struct{}
}

func newPoller(e *epollEngine) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &poller{eng: e, epfd: epfd, wakefd: wfd, done: make(chan struct{})}
	// Generation 0 marks non-connection fds (the eventfd, listeners).
	if err := p.add(wfd, 0, unix.EPOLLIN); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, err
	}
	return p, nil
}

func (p *poller) ctl(op, fd int, gen uint32, mask uint32) error {
	// The event data carries fd and generation only: never a Go pointer.
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

func (p *poller) wake() {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.wakefd, one[:])
}

func (p *poller) loop() {
	defer close(p.done)
	e := p.eng
	events := make([]unix.EpollEvent, 256)
	timeout := -1
	for {
		n, err := unix.EpollWait(p.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			return
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			fd, gen := int(ev.Fd), uint32(ev.Pad)
			if gen == 0 {
				if fd == p.wakefd {
					var buf [8]byte
					_, _ = unix.Read(p.wakefd, buf[:])
					if e.closing.Load() {
						return
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
			c.ready(ev.Events)
		}
		// Ready connections the pool had no room for wait in a queue; keep offering them
		// to the pool every millisecond until it drains.
		timeout = -1
		if e.ready.len() > 0 {
			e.drainReady()
			if e.ready.len() > 0 {
				timeout = 1
			}
		}
	}
}

// ready is called by the poller for an event on c. The one-shot registration has fired,
// so c is disarmed; it goes to exactly one worker unless one already owns it (then the
// owner's re-arm at its end will report the readiness again).
func (c *econn) ready(events uint32) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.armed = 0 // the one-shot registration fired
	if c.dialing {
		c.dialing = false
		close(c.ctx.(chan struct{}))
		c.mu.Unlock()
		return
	}
	if c.busy {
		c.mu.Unlock()
		return
	}
	c.busy = true
	c.revents = events
	c.mu.Unlock()
	c.eng().dispatch(c)
}
