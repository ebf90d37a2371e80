//go:build linux

package fleettest

import "syscall"

// dieWithParent makes a server the test starts die with the test binary, so a crashed
// test leaves no etcd or redis-server behind.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
