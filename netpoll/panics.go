package netpoll

import (
	"log/slog"
	"runtime/debug"
)

// A panicking handler must not leave a connection half-served (owned forever, never
// re-armed or closed) nor take down the process from an engine goroutine: each callback
// site recovers, logs the panic with its stack, and closes the connection with
// ReasonHandler.

func logPanic(callback string, id uint64, r any) {
	slog.Error("netpoll: handler panic", "callback", callback, "conn", id, "panic", r,
		"stack", string(debug.Stack()))
}

// callSafely runs a non-hot callback; false if it panicked.
func callSafely(callback string, id uint64, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			logPanic(callback, id, r)
			ok = false
		}
	}()
	f()
	return true
}

// callOnData runs OnData without a closure allocation on the hot path.
func callOnData(h Handler, c Conn, data []byte) (n int, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("OnData", c.ID(), r)
			panicked = true
		}
	}()
	n, err = h.OnData(c, data)
	return n, err, false
}
