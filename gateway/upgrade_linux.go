//go:build linux

package gateway

import "golang.org/x/sys/unix"

// handoverPair is the socket pair a hot upgrade talks over: message boundaries kept
// (SEQPACKET), not inherited by anything else the process starts.
func handoverPair() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
}
