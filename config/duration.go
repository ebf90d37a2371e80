package config

import (
	"encoding/json"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Durations are written with a unit, as Go's time.ParseDuration reads them: "2s", "150ms",
// "1m30s". A bare number is rejected (except 0): "timeout: 10" is ambiguous between seconds
// and milliseconds, and guessing wrong by a factor of 1000 is worse than asking for a unit.
// Negative values parse, so that Validate can report them with their field path.

// String formats d like time.Duration does ("2s", "1m30s", "0s").
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads a duration with a unit ("2s", "150ms"); "0" is accepted as zero.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use a unit: 2s, 150ms, 1m)", truncate(s, 64))
	}
	return Duration(v), nil
}

// UnmarshalYAML accepts a scalar such as 2s. Errors are yaml TypeErrors carrying the line,
// so they are collected with the document's other type errors rather than aborting it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a scalar like 2s", n.Line)}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a string such as "2s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a string such as "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts a string such as "2s", or the number 0.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "0" {
		*d = 0
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string like \"2s\", got %s", truncate(string(b), 32))
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// truncate shortens s for an error message so that a huge bad value cannot flood a log.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
