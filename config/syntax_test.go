package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	for in, want := range map[string]time.Duration{
		"2s": 2 * time.Second, "150ms": 150 * time.Millisecond, "1m30s": 90 * time.Second,
		"0": 0, "-5s": -5 * time.Second, `"3h"`: 3 * time.Hour,
	} {
		v.D = 123
		if err := yaml.Unmarshal([]byte("d: "+in), &v); err != nil || v.D.D() != want {
			t.Errorf("%s: %v, %v", in, v.D, err)
		}
	}
	for _, in := range []string{"10", "1.5", "soon", "[1s]", "{a: 1}", "1x"} {
		if err := yaml.Unmarshal([]byte("d: "+in), &v); err == nil {
			t.Errorf("%s accepted as %v", in, v.D)
		} else if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: error lacks the line: %v", in, err)
		}
	}
	out, _ := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(1500 * time.Millisecond)})
	if string(out) != "d: 1.5s\n" {
		t.Errorf("marshal: %q", out)
	}
}

func TestDurationJSON(t *testing.T) {
	b, _ := json.Marshal(Duration(150 * time.Millisecond))
	if string(b) != `"150ms"` {
		t.Errorf("marshal: %s", b)
	}
	var d Duration
	for in, want := range map[string]time.Duration{`"2s"`: 2 * time.Second, `0`: 0, `"0s"`: 0} {
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, in := range []string{`5`, `"5"`, `true`, `"x"`} {
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestLinePaths(t *testing.T) {
	doc := "listeners:\n" + // 1
		"  - {name: web, listen: x}\n" + // 2
		"  - name: m\n" + // 3
		"    listen: y\n" + // 4
		"routes:\n" + // 5
		"  - split: {a: 1, b: 2}\n" // 6
	paths, _ := linePaths([]byte(doc))
	for line, want := range map[int]string{1: "listeners", 2: "listeners[0]", 3: "listeners[1].name", 4: "listeners[1].listen", 6: "routes[0].split"} {
		if got := paths[line].path; got != want {
			t.Errorf("line %d: %q, want %q", line, got, want)
		}
	}
}

func TestCommonPath(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"a.b"}, "a.b"},
		{[]string{"a.bc", "a.bd"}, "a"},
		{[]string{"x[1].name", "x[1].listen"}, "x[1]"},
		{[]string{"x[1]", "x[10]"}, "x"},
		{[]string{"a", "b"}, ""},
	} {
		if got := commonPath(c.in); got != c.want {
			t.Errorf("%v: %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "2GiB": 2 << 30, "512MiB": 512 << 20, "7B": 7, "1TiB": 1 << 40} {
		if n, err := ParseByteSize(in); err != nil || n != want {
			t.Errorf("%s: %d %v", in, n, err)
		}
	}
	for _, in := range []string{"", "2GB", "-1", "x", "99999999999TiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
