//go:build !linux

package gateway

import "errors"

// handoverPair: connections move between processes only with the epoll engine, on Linux.
func handoverPair() ([2]int, error) {
	return [2]int{}, errors.New("hot upgrade needs Linux")
}
