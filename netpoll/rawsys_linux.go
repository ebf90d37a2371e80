//go:build linux && !race && !msan && !asan

package netpoll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket calls of the data path bypass the runtime's entersyscall/exitsyscall. They
// never block (every socket is non-blocking), but a write on loopback also runs the
// receiver's TCP work and takes 20 us and more. A syscall that long lets sysmon hand the
// P to another thread mid-call; on a one-P gateway that is a thread wake-up and a switch
// back per request, and sysmon polling at its fastest rate the whole time (0.87
// nanosleep per proxied request under strace). cloudwego/netpoll makes the same calls
// raw. The cost: a GC stop-the-world waits for a call in progress, which is short.
//
// Under the race detector (and msan, asan) the checked calls of rawsys_checked_linux.go
// are used instead: x/sys/unix tells the detector which bytes the kernel reads and
// writes, so a buffer reused while a write still reads it is caught by the tests.

// Every connection is a stream socket, so reads and writes are recvfrom(2) and sendto(2)
// rather than read(2) and write(2): those go through the file layer first (a position
// lock check, rw_verify_area, security_file_permission), about 0.3 us a request more in
// the kernel (perf, mgw next to nginx, which uses recvfrom). MSG_NOSIGNAL makes a write
// to a closed peer an EPIPE without a SIGPIPE to deliver and ignore.

// rawRead is a read without the runtime's syscall bookkeeping.
func rawRead(fd int, p []byte) (int, error) { return rawRW(unix.SYS_RECVFROM, fd, p, 0) }

// rawReadStamped is rawRead as recvmsg(2), with room for the control message that carries
// the kernel's receive time (Config.RxTimestamps); it returns that time (rxStamp).
func rawReadStamped(fd int, p []byte) (int, int64, error) {
	var oob [rxOOBSize]byte
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	if e != 0 {
		return -1, 0, e
	}
	return int(n), rxStamp(oob[:msg.Controllen]), nil
}

// rawWrite is a write without the runtime's syscall bookkeeping.
func rawWrite(fd int, p []byte) (int, error) {
	return rawRW(unix.SYS_SENDTO, fd, p, unix.MSG_NOSIGNAL)
}

// rawRW makes recvfrom(2) or sendto(2) (trap) on p, with no address.
func rawRW(trap uintptr, fd int, p []byte, flags uintptr) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)), flags, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawWritev is unix.Writev without the runtime's syscall bookkeeping.
func rawWritev(fd int, bufs [][]byte) (int, error) {
	var small [8]unix.Iovec
	iov := small[:0]
	if len(bufs) > len(small) {
		iov = make([]unix.Iovec, 0, len(bufs))
	}
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	if len(iov) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
