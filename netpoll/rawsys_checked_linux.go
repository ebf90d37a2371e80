//go:build linux && (race || msan || asan)

package netpoll

import "golang.org/x/sys/unix"

// The checked socket calls, for builds with the race detector, msan or asan: see
// rawsys_linux.go.

func rawRead(fd int, p []byte) (int, error) { return unix.Read(fd, p) }
func rawReadStamped(fd int, p []byte) (int, int64, error) {
	var oob [rxOOBSize]byte
	n, oobn, _, _, err := unix.Recvmsg(fd, p, oob[:], 0)
	if err != nil {
		return -1, 0, err
	}
	return n, rxStamp(oob[:oobn]), nil
}
func rawWrite(fd int, p []byte) (int, error)       { return unix.Write(fd, p) }
func rawWritev(fd int, bufs [][]byte) (int, error) { return unix.Writev(fd, bufs) }
