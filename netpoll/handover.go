package netpoll

import "errors"

// Handover is what a connection takes to another process on a hot upgrade: its socket and
// the bytes already read from it that no OnData consumed.
type Handover struct {
	// FD is a close-on-exec duplicate of the connection's socket; the caller closes it once
	// it has been sent.
	FD int
	// Pending is a copy of the unconsumed bytes, to be delivered first by the adopter.
	Pending []byte
}

// Migrator is implemented by engines that can hand live connections to another process
// (the epoll engine). The protocol around it (who pauses, who commits) is the caller's;
// these are the steps the engine alone can take.
type Migrator interface {
	// PauseAccept stops accepting on every listener without closing them (the kernel
	// backlog, or another process sharing the sockets, takes new connections); it returns
	// once no accept is in progress. ResumeAccept undoes it.
	PauseAccept()
	ResumeAccept()
	// Export returns c's socket and unconsumed bytes. c must be quiet: reads paused
	// (PauseRead), no goroutine serving it, nothing in its write queue, not closing;
	// otherwise ErrNotQuiet, and the caller tries again later. From then on writes to c
	// fail with ErrExported, so no byte of this process interleaves with the adopter's.
	// Until the caller closes c with ReasonMigrated it stays this process's: Reclaim
	// lets it write again (a rollback), then ResumeRead.
	Export(c Conn) (Handover, error)
	Reclaim(c Conn)
	// Adopt serves fd, a connection socket from another process, as a connection of the
	// named listener: OnOpen runs, then the connection waits with reads paused (one
	// PauseRead) until ResumeRead, which delivers pending first. On success the engine owns
	// fd; on error the caller still does.
	Adopt(listener string, fd int, pending []byte) (Conn, error)
}

// ListenerFDer is implemented by both engines: it gives out a listening socket, so that a
// new process can inherit it (ListenerOptions.InheritFD).
type ListenerFDer interface {
	// ListenerFD returns a close-on-exec duplicate of the named listener's socket; the
	// caller closes it.
	ListenerFD(name string) (int, error)
}

// ErrExported: a write to a connection handed to another process (Migrator.Export) was
// refused; nothing was written.
var ErrExported = errors.New("netpoll: connection handed to another process")

// ErrNotQuiet: Export was asked for a connection that is being served, has queued writes
// or is not paused; try again once it is quiet.
var ErrNotQuiet = errors.New("netpoll: connection not quiet")
