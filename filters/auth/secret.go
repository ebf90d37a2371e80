package auth

import (
	"fmt"
	"log/slog"
)

// secret holds an app's key. Every way of printing it prints a placeholder, so that a
// struct holding one can be logged or dumped by mistake without leaking the key.
type secret []byte

const redacted = "[redacted]"

func (secret) String() string                  { return redacted }
func (secret) GoString() string                { return redacted }
func (secret) LogValue() slog.Value            { return slog.StringValue(redacted) }
func (secret) MarshalJSON() ([]byte, error)    { return []byte(`"` + redacted + `"`), nil }
func (secret) MarshalText() ([]byte, error)    { return []byte(redacted), nil }
func (s secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
