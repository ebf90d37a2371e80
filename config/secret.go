package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxSecretBytes bounds a secret file: a key is tens of bytes, never megabytes.
const MaxSecretBytes = 4096

// ResolveSecret returns the app's signing key: the inline secret, the value of the
// environment variable secret_env (read through getenv, so tests and callers control the
// environment), or the contents of secret_file; one trailing newline ("\n" or "\r\n") is
// trimmed. An unset or empty variable, an unreadable or empty file, or no source at all is an
// error naming the app id and the variable or file, never the value. The result is a fresh
// slice the caller owns.
func (a *App) ResolveSecret(getenv func(string) string) ([]byte, error) {
	var b []byte
	switch {
	case a.Secret != "":
		b = []byte(a.Secret)
	case a.SecretEnv != "":
		if getenv == nil {
			getenv = os.Getenv
		}
		v := getenv(a.SecretEnv)
		if v == "" {
			return nil, fmt.Errorf("app %q: environment variable %s (secret_env) is unset or empty", a.ID, a.SecretEnv)
		}
		b = []byte(v)
	case a.SecretFile != "":
		f, err := os.Open(a.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("app %q: secret_file: %w", a.ID, scrubPathErr(err))
		}
		defer f.Close()
		b, err = io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
		if err != nil {
			return nil, fmt.Errorf("app %q: secret_file %s: %w", a.ID, a.SecretFile, scrubPathErr(err))
		}
		if len(b) > MaxSecretBytes {
			return nil, fmt.Errorf("app %q: secret_file %s is over %d bytes", a.ID, a.SecretFile, MaxSecretBytes)
		}
	default:
		return nil, fmt.Errorf("app %q: no secret configured (set one of secret, secret_env, secret_file)", a.ID)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("app %q: the secret is empty", a.ID)
	}
	return b, nil
}

// scrubPathErr keeps an *os.PathError's operation, path and cause; it never holds file
// contents, so it is safe to show, but is normalized to one shape for messages.
func scrubPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}
