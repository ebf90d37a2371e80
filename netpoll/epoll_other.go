//go:build !linux

package netpoll

import "fmt"

// The epoll engine is Linux's; elsewhere the module builds with the rwloop engine alone.

type elistener struct{}

type epollEngine struct{}

func newEpollEngine(Config) (Engine, error) {
	return nil, fmt.Errorf("netpoll: engine epoll needs Linux: %w (use engine: rwloop)", ErrUnknownKind)
}
