package netpoll

import (
	"os"
	"strconv"
	"strings"
)

// somaxconn reads the system's listen backlog cap, the default backlog.
func somaxconn() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
