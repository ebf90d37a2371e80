package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestAdminLocal(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:9901": true, "127.0.0.2:0": true, "[::1]:9901": true, "localhost:9901": true,
		"unix:/run/mgw/admin.sock": true,
		"0.0.0.0:9901":             false, ":9901": false, "[::]:9901": false, "10.0.0.1:9901": false,
		"mgw.internal:9901": false, "garbage": false,
	} {
		a := Admin{Listen: listen}
		if got := a.Local(); got != want {
			t.Errorf("Admin{Listen: %q}.Local() = %v, want %v", listen, got, want)
		}
	}
}

func TestAdminTokenResolve(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	env := map[string]string{"GOOD": tok, "SHORT": "abc"}
	getenv := func(k string) string { return env[k] }
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	if err := os.WriteFile(file, []byte(tok+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", MaxSecretBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok    AdminToken
		want   string // the value, or "" when an error is wanted
		errHas []string
	}{
		{tok: AdminToken{Name: "ops", Env: "GOOD"}, want: tok},
		{tok: AdminToken{Name: "ops", File: file}, want: tok},
		{tok: AdminToken{Name: "ops", Env: "UNSET"}, errHas: []string{"admin.tokens[0].env", "UNSET", "unset or empty"}},
		{tok: AdminToken{Name: "ops", Env: "SHORT"}, errHas: []string{"admin.tokens[0]", `token "ops" is 3 bytes`}},
		{tok: AdminToken{Name: "ops", File: filepath.Join(dir, "missing")}, errHas: []string{"admin.tokens[0].file", "missing"}},
		{tok: AdminToken{Name: "ops", File: big}, errHas: []string{"is over 4096 bytes"}},
		{tok: AdminToken{Name: "ops"}, errHas: []string{"no source"}},
	} {
		got, err := tc.tok.Resolve("admin.tokens[0]", getenv)
		if tc.want != "" {
			if err != nil || string(got) != tc.want {
				t.Errorf("%+v: %q, %v; want the token", tc.tok, got, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: accepted %q", tc.tok, got)
			continue
		}
		for _, s := range tc.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%+v: error %q lacks %q", tc.tok, err, s)
			}
		}
		if strings.Contains(err.Error(), "abc") {
			t.Errorf("%+v: error %q shows the value", tc.tok, err)
		}
	}
}

func TestAdminDefaultsAndClone(t *testing.T) {
	c := Default()
	if c.Admin.Reads != AdminReadsOpen || len(c.Admin.Tokens) != 0 || !c.Admin.Local() {
		t.Errorf("default admin = %+v; want loopback, no tokens, open reads", c.Admin)
	}
	c.Admin.Tokens = []AdminToken{{Name: "ops", Env: "X"}}
	c.Admin.Hosts = []string{"mgw.internal"}
	d := c.Clone()
	d.Admin.Tokens[0].Name = "changed"
	d.Admin.Hosts[0] = "changed"
	if c.Admin.Tokens[0].Name != "ops" || c.Admin.Hosts[0] != "mgw.internal" {
		t.Errorf("mutating the clone changed the original: %+v", c.Admin)
	}
}

// TestKubernetesManifestConfig: the deploy kit's ConfigMap holds a valid config that
// keeps control off the pod network and probes on the health listener.
func TestKubernetesManifestConfig(t *testing.T) {
	data, err := os.ReadFile("../deploy/k8s/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deployment, err := os.ReadFile("../deploy/k8s/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var cfgText string
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "ConfigMap" {
			cfgText = doc.Data["mgw.yaml"]
		}
	}
	if cfgText == "" {
		t.Fatal("no ConfigMap with mgw.yaml")
	}
	c, err := Parse([]byte(cfgText))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatalf("the manifest's config: %v", err)
	}
	if !c.Admin.Local() || len(c.Admin.Tokens) == 0 || c.Health.Listen == "" {
		t.Errorf("admin %+v health %+v: want a loopback admin with a token and a health listener", c.Admin, c.Health)
	}
	if !strings.Contains(string(deployment), "path: /readyz, port: health") || !strings.Contains(string(deployment), "path: /healthz, port: health") {
		t.Error("the probes do not use the health listener")
	}
}
