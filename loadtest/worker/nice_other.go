//go:build !linux

package worker

import "fmt"

// yieldCPU is Linux's only: workers run on the epoll reactor anyway.
func yieldCPU(n int) error { return fmt.Errorf("nice %d: only on Linux", n) }
