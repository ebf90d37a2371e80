package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const topSecret = "TOPSECRET-4b1d"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolveSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(topSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	crlf := filepath.Join(dir, "crlf")
	os.WriteFile(crlf, []byte(topSecret+"\r\n"), 0o600)
	getenv := env(map[string]string{"K": topSecret + "\n", "EMPTY": ""})
	ok := []App{
		{ID: "inline", Secret: topSecret},
		{ID: "env", SecretEnv: "K"},
		{ID: "file", SecretFile: file},
		{ID: "crlf", SecretFile: crlf},
	}
	for _, a := range ok {
		got, err := a.ResolveSecret(getenv)
		if err != nil || string(got) != topSecret {
			t.Errorf("%s: %q, %v", a.ID, got, err)
		}
	}
	bad := []struct {
		app  App
		want string
	}{
		{App{ID: "w", SecretEnv: "UNSET"}, `app "w": environment variable UNSET (secret_env) is unset or empty`},
		{App{ID: "w", SecretEnv: "EMPTY"}, `app "w": environment variable EMPTY (secret_env) is unset or empty`},
		{App{ID: "w", SecretFile: filepath.Join(dir, "missing")}, `app "w": secret_file: open ` + filepath.Join(dir, "missing")},
		{App{ID: "w"}, `app "w": no secret configured`},
	}
	for _, c := range bad {
		_, err := c.app.ResolveSecret(getenv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.app, err, c.want)
		}
	}
}

// TestSecretsNeverLeak puts an inline secret into configs that fail in every way we can
// think of, and into Redacted output, and checks the secret's text never appears.
func TestSecretsNeverLeak(t *testing.T) {
	base := "listeners:\n  - {name: web, listen: 127.0.0.1:0, protocol: http1}\n"
	docs := []string{
		base + "apps:\n  - {id: a, secret: " + topSecret + ", secret_env: X}\n",
		base + "apps:\n  - {id: a, secret: " + topSecret + "}\n  - {id: a, secret: " + topSecret + "}\n",
		base + "apps:\n  - {id: a, secret: !!int " + topSecret + "}\n",
		base + "apps:\n  - id: a\n    secret: !!int " + topSecret + "\n",
		base + "apps:\n  - id: a\n    secret: !!float " + topSecret + "\n",
		base + "apps:\n  - {id: a, secret: " + topSecret + ", bogus: 1}\n",
		base + "apps:\n  - id: a\n    secret: [" + topSecret + "]\n",
		base + "apps:\n  - id: a\n    secret: {" + topSecret + ": 1}\n",
	}
	for i, d := range docs {
		c, err := Parse([]byte(d))
		if err == nil {
			err = c.Validate()
		}
		if err == nil {
			t.Errorf("doc %d accepted", i)
			continue
		}
		if strings.Contains(err.Error(), topSecret) {
			t.Errorf("doc %d: error leaks the secret: %v", i, err)
		}
	}

	c, err := Parse([]byte(base + "apps:\n  - {id: a, secret: " + topSecret + "}\n  - {id: b, secret_env: B}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	j, _ := json.Marshal(r)
	y, _ := yaml.Marshal(r)
	for name, out := range map[string][]byte{"json": j, "yaml": y} {
		if strings.Contains(string(out), topSecret) {
			t.Errorf("Redacted %s leaks the secret: %s", name, out)
		}
	}
	if !strings.Contains(string(j), `"secret_env":"B"`) {
		t.Errorf("Redacted JSON dropped secret_env: %s", j)
	}
	if c.Apps[0].Secret != topSecret {
		t.Error("Redacted changed the original")
	}
	// Plain JSON of the config never carries an inline secret either (json:"-").
	if j, _ := json.Marshal(c); strings.Contains(string(j), topSecret) {
		t.Errorf("JSON of the config leaks the secret: %s", j)
	}
}
