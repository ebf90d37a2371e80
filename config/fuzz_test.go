package config

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds arbitrary documents to Parse. Parse must never panic; whatever it accepts
// must survive Validate, Clone and Redacted; and a config that validates must marshal to
// YAML that parses and validates again (so the admin API can always show what it runs).
// Seeds: default.yaml and every file under testdata.
func FuzzParse(f *testing.F) {
	f.Add(defaultYAML)
	seeds, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/invalid/*.yaml")
	for _, name := range append(seeds, more...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		c.Clone()
		c.Redacted()
		if c.Validate() != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal of a valid config: %v", err)
		}
		c2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of a valid config: %v\n%s", err, out)
		}
		if err := c2.Validate(); err != nil {
			t.Fatalf("re-parsed config invalid: %v\n%s", err, out)
		}
	})
}
