package netpoll

import "errors"

// Errors returned by Conn and Engine methods. Callers compare with errors.Is.
var (
	// ErrClosed: the connection (or engine) is closed; nothing was written.
	ErrClosed = errors.New("netpoll: connection closed")
	// ErrWriteLimit: the write would have queued more than Config.WriteHardLimit bytes; the
	// connection was closed with ReasonWriteLimit.
	ErrWriteLimit = errors.New("netpoll: write queue over hard limit")
	// ErrEngineClosed: the engine was closed.
	ErrEngineClosed = errors.New("netpoll: engine closed")
	// ErrUnknownKind: Config.Kind names no engine.
	ErrUnknownKind = errors.New("netpoll: unknown engine kind")
)
