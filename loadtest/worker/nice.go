package worker

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// yieldCPU makes this process nice n, unless it is nicer already. On Linux a niceness
// belongs to a thread, and a new thread takes its creator's: every thread there is now
// is set, twice over, so none the runtime starts meanwhile is missed.
func yieldCPU(n int) error {
	for range 2 {
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
		}
	}
	return nil
}

// niceness is the niceness of this process's main thread (for tests and reports).
func niceness() (int, error) {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, err
	}
	return 20 - p, nil
}
