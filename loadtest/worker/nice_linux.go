package worker

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// yieldCPU makes this process nice n, unless it is nicer already. On Linux a niceness
// belongs to a thread, and a new thread takes its creator's: every thread there is now
// is set, and the listing is read again until a pass finds none left to set, so none the
// runtime started meanwhile from a thread not yet set is missed.
func yieldCPU(n int) error {
	for changed := true; changed; {
		changed = false
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("nice %d: %w", n, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// The raw getpriority(2) gives 20 - nice.
			if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil && 20-p >= n {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && err != unix.ESRCH {
				return fmt.Errorf("nice %d: thread %d: %w", n, tid, err)
			}
			changed = true
		}
	}
	return nil
}
