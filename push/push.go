// Package push is the per-device push log of mmtp.md "Push delivery": each device (the
// app-id and device-id of a successful HELLO) has an ordered log of messages numbered by
// seq inside an epoch, bounded per device and gateway-wide, with a TTL per message.
//
// The gateway talks to a Store; Memory is the in-process implementation, and a fleet's
// is fleet/redisfleet.PushStore (push/pushtest holds both to the same tests). The package knows nothing of connections: the
// gateway decides which connection a device's messages go out on and when.
package push

import (
	"errors"
	"time"
)

// Key names a device: the app-id and device-id of its HELLO. With auth off App may be "".
type Key struct {
	App, Device string
}

// Message is what a publisher sends to one device.
type Message struct {
	Topic     string
	Body      []byte
	MessageID string // the publisher's id, passed through; may be ""
	// Expires is the Unix time in milliseconds after which the message is not delivered;
	// 0 means never.
	Expires int64
}

// Delivery is a message taken from a device's log to be sent.
type Delivery struct {
	Seq   uint64
	Epoch string // the log's epoch when it was taken
	Message
	// Redelivery is set when this message was taken before (sent on an earlier or the
	// same connection and not acknowledged).
	Redelivery bool
}

// Resumed is the answer to a HELLO (mmtp.md "Resume").
type Resumed struct {
	Epoch string // the current epoch: the HELLO 200's push-epoch
	Seq   uint64 // the highest seq assigned in the log so far: push-seq (0: none)
	Reset bool   // push-reset: 1, history the client asked for is gone
	// After is the seq after which the log's messages are to be sent: the client's
	// push-seq when it resumes, else 0 (everything the log holds).
	After uint64
	// Pending is the first of them, in seq order, at most the limit asked for; the rest
	// come from Next.
	Pending []Delivery
}

// Store is a set of device logs. Every method is safe for concurrent use, and now is the
// caller's clock (tests move it).
type Store interface {
	// Append adds m to k's log and returns its seq and the log's epoch after the append.
	// When the log is over its bounds afterwards, its oldest messages are evicted and the
	// epoch changes. It fails with ErrTooLarge when m alone is over the per-device byte
	// bound, and ErrBudget when the gateway-wide byte budget is used up.
	Append(k Key, m Message, now time.Time) (seq uint64, epoch string, err error)
	// Ack removes seq from k's log: the client processed it. It reports whether it was
	// there. epoch is the one the message was sent in; an epoch that is not one of this
	// log's (another process's) acknowledges nothing.
	Ack(k Key, epoch string, seq uint64) bool
	// Resume applies a HELLO's push-epoch and push-seq (hasEpoch false: the HELLO had no
	// push-epoch) and returns the response's headers and the first limit messages to send.
	// Messages up to a resuming client's push-seq count as processed and leave the log.
	Resume(k Key, epoch string, seq uint64, hasEpoch bool, limit int, now time.Time) Resumed
	// Next returns up to limit unexpired messages with seq above after, in seq order, and
	// marks them taken.
	Next(k Key, after uint64, limit int, now time.Time) []Delivery
	// Sweep drops expired messages of every log and returns how many it dropped; the
	// other methods drop a log's expired messages as they touch it.
	Sweep(now time.Time) int
	// Stats is a snapshot of the counters.
	Stats() Stats
}

// Stats are a store's counters since it was made.
type Stats struct {
	Devices   int64  `json:"devices"`     // devices with a record (ever pushed to)
	Pending   int64  `json:"pending"`     // messages in the logs
	LogBytes  int64  `json:"log_bytes"`   // body bytes in the logs
	Budget    int64  `json:"budget"`      // the gateway-wide bound on LogBytes
	Published uint64 `json:"published"`   // appended
	Acked     uint64 `json:"acked"`       // removed by Ack or a resume's push-seq
	Expired   uint64 `json:"expired"`     // dropped past their expires
	Evicted   uint64 `json:"evicted"`     // dropped by a per-device bound
	Refused   uint64 `json:"refused"`     // Append refused by the budget
	Resets    uint64 `json:"resets"`      // HELLOs answered push-reset: 1
	Redeliver uint64 `json:"redelivered"` // messages taken again
}

// Errors of Append.
var (
	ErrTooLarge = errors.New("push: message body is over the per-device byte bound (push.max_bytes)")
	ErrBudget   = errors.New("push: the gateway-wide push byte budget (push.budget) is used up")
)

// Limits bound the logs.
type Limits struct {
	MaxMessages int   // per device; default 64
	MaxBytes    int64 // body bytes per device; default 64 KiB
	Budget      int64 // body bytes of all logs; default 64 MiB
}

// Defaults of Limits (mmtp.md: 64 messages, 64 KiB of bodies per device).
const (
	DefaultMaxMessages = 64
	DefaultMaxBytes    = 64 << 10
	DefaultBudget      = 64 << 20
	// Window is how many pushes a connection may have unacknowledged (mmtp.md).
	Window = 16
)

// OrDefault is l with its zero (or negative) fields at their defaults; every Store
// takes its limits through it.
func (l Limits) OrDefault() Limits {
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultMaxMessages
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.Budget <= 0 {
		l.Budget = DefaultBudget
	}
	return l
}

// ValidEpoch reports whether s is an epoch as mmtp.md allows one: 1..64 bytes of
// [A-Za-z0-9._-].
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
