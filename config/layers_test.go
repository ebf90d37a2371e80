package config_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mgw-project/mgw"

// TestNothingImportsUpward keeps the layers of design.md: the codecs, the reactor, the
// filters and config sit below the gateway, so none of them may depend on gateway/ (not
// even indirectly), and config, the floor, depends on no other package of the module.
// Test files are not looked at: a test may drive a real gateway.
func TestNothingImportsUpward(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	for _, c := range []struct {
		pkgs    string   // a go list pattern, relative to config/
		allowed []string // module packages it may depend on; nil: any but gateway/
	}{
		{"../codec/...", nil},
		{"../netpoll/...", nil},
		{"../filters/...", nil},
		{"../config/...", []string{module + "/config"}},
	} {
		out, err := exec.Command("go", "list", "-deps", c.pkgs).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", c.pkgs, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			if dep != module && !strings.HasPrefix(dep, module+"/") {
				continue
			}
			if dep == module+"/gateway" || strings.HasPrefix(dep, module+"/gateway/") {
				t.Errorf("%s depends on %s: it must not import the gateway (design.md, layers)", c.pkgs, dep)
				continue
			}
			if c.allowed != nil && !slices.Contains(c.allowed, dep) {
				t.Errorf("%s depends on %s: config is the floor and imports no other package of the module", c.pkgs, dep)
			}
		}
	}
}
