package jsonerr

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDescribe(t *testing.T) {
	type update struct {
		Split map[string]int `json:"split"`
		TTL   string         `json:"ttl"`
		Retry *bool          `json:"retry"`
	}
	for in, want := range map[string]string{
		`{"split":{"a":"x"}}`: "split: a string where a number belongs",
		`{"split":[1]}`:       "split: an array where an object belongs",
		`{"ttl":60}`:          "ttl: a number where a string belongs",
		`{"retry":"yes"}`:     "retry: a string where a boolean belongs",
		`{"split":{"a":1.5}}`: "split: 1.5 is not a whole number in range",
	} {
		var u update
		if got := Describe(json.Unmarshal([]byte(in), &u)); got == nil || got.Error() != want {
			t.Errorf("%s: %v, want %q", in, got, want)
		}
	}
	var m map[string]int
	if got := Describe(json.Unmarshal([]byte(`[1]`), &m)); got == nil || got.Error() != "an array where an object belongs" {
		t.Errorf("top-level: %v", got)
	}
	other := errors.New("unexpected EOF")
	if Describe(other) != other {
		t.Error("an error that is not a type error changed")
	}
}
