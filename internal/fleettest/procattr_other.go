//go:build !linux

package fleettest

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's.
func dieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
