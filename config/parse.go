package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxConfigBytes bounds a config document. Real configs are a few KiB; the bound keeps a
// wrong file (or a hostile admin upload) from costing unbounded memory in the YAML parser.
const MaxConfigBytes = 4 << 20

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the text of the compiled-in default config (a copy).
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the compiled-in default config: loopback MMTP and HTTP listeners, the admin
// listener and the in-process demo backend, routed so that `mgw serve` works with no file.
// It goes through Parse like any file; a failure is a build defect, caught by the tests.
func Default() *Config {
	c, err := Parse(defaultYAML)
	if err != nil {
		panic("config: the compiled-in default.yaml is invalid: " + err.Error())
	}
	return c
}

// Load reads and parses the config file at path. It does not call Validate.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes one YAML document strictly (unknown fields and type mismatches are errors,
// each naming its line and, where it can be found, the field path) and applies defaults.
// It does not call Validate: callers decide when to, so that tools can show a parsed but
// invalid config. JSON is YAML, so Parse also reads the JSON form of a Config (as written
// by encoding/json). Parse never panics on any input and retains nothing of data. At most
// maxReportedYAMLErrors decode errors are reported.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("config is %d bytes, over the limit of %d", len(data), MaxConfigBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("config is empty")
	}
	c := new(Config)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config has no YAML document (only comments?)")
		}
		return nil, annotate(data, err)
	}
	// A second document would be silently ignored; refuse it, but allow a bare trailing "---".
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) && (err != nil || !emptyDocument(&extra)) {
		return nil, errors.New("config holds more than one YAML document (a second '---'); only one is read")
	}
	c.ApplyDefaults()
	return c, nil
}

func emptyDocument(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

const maxReportedYAMLErrors = 100

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// annotate rewrites yaml's errors to name the field path of the line each one is on. yaml
// quotes offending values, so any message on a line holding an inline secret, or quoting a
// secret's text, is replaced by one that says where the problem is but not what it is.
func annotate(data []byte, err error) error {
	paths, secrets := linePaths(data)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if hidesSecret(err.Error(), secrets) {
			return errors.New("config: a YAML error involving an app's secret (message not shown, it would quote the secret)")
		}
		return fmt.Errorf("config: %w", err)
	}
	msgs := te.Errors
	if len(msgs) > maxReportedYAMLErrors {
		msgs = msgs[:maxReportedYAMLErrors]
	}
	errs := make([]error, 0, len(msgs)+1)
	for _, msg := range msgs {
		m := yamlLine.FindStringSubmatch(msg)
		if m == nil {
			if hidesSecret(msg, secrets) {
				msg = "a YAML error involving an app's secret (message not shown, it would quote the secret)"
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		lp := paths[line]
		p := lp.path
		rest := msg[len(m[0]):]
		switch {
		case lp.secret || hidesSecret(msg, secrets):
			errs = append(errs, fmt.Errorf("%s: invalid value (line %d; not shown, a secret is on this line)", p, line))
		case p == "":
			errs = append(errs, fmt.Errorf("config: %s", msg))
		default:
			errs = append(errs, fmt.Errorf("%s: %s (line %d)", p, explainUnknownField(rest), line))
		}
	}
	if n := len(te.Errors) - len(msgs); n > 0 {
		errs = append(errs, fmt.Errorf("... and %d more errors", n))
	}
	return errors.Join(errs...)
}

func hidesSecret(msg string, secrets []string) bool {
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// linePath is what is on one line of the document.
type linePath struct {
	path   string // field path, or the common prefix of several
	secret bool   // an app's inline secret is on this line
}

// linePaths maps each line of the document to the field path of what is on it: the single
// path when the line holds one key or value, otherwise the longest common prefix (a flow
// mapping such as `- {name: a, listen: b}` maps to `listeners[0]`).
//
// It also returns the text of every scalar under an inline secret, so that messages quoting
// one can be caught whatever line yaml blames.
func linePaths(data []byte) (map[int]linePath, []string) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil, nil
	}
	var secrets []string
	all := map[int][]string{}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		if n == nil || depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinPath(path, k.Value)
				all[k.Line] = append(all[k.Line], p)
				if isSecretPath(path) && k.Value != "" {
					secrets = append(secrets, k.Value)
				}
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		case yaml.ScalarNode:
			all[n.Line] = append(all[n.Line], path)
			if isSecretPath(path) && n.Value != "" {
				secrets = append(secrets, n.Value)
			}
		}
	}
	walk(&root, "", 0)
	out := make(map[int]linePath, len(all))
	for line, ps := range all {
		lp := linePath{path: commonPath(ps)}
		for _, p := range ps {
			lp.secret = lp.secret || isSecretPath(p)
		}
		out[line] = lp
	}
	return out, secrets
}

// isSecretPath reports whether p is an app's inline secret or something inside it.
func isSecretPath(p string) bool {
	return strings.HasPrefix(p, "apps[") && (strings.HasSuffix(p, ".secret") || strings.Contains(p, ".secret[") || strings.Contains(p, ".secret."))
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// commonPath is the longest common prefix of paths that ends at a path element boundary.
func commonPath(ps []string) string {
	p := ps[0]
	for _, q := range ps[1:] {
		for p != "" && !(q == p || strings.HasPrefix(q, p) && (q[len(p)] == '.' || q[len(p)] == '[')) {
			i := strings.LastIndexAny(p, ".[")
			if i < 0 {
				i = 0
			}
			p = p[:i]
		}
	}
	return p
}

var yamlUnknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

// explainUnknownField turns yaml's "field proto not found in type config.Listener" into
// `unknown field "proto" (known: name, listen, protocol, ...)`, so a typo shows its fix.
func explainUnknownField(msg string) string {
	m := yamlUnknownField.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	known := knownFields(strings.TrimPrefix(m[2], "config."))
	if known == "" {
		return fmt.Sprintf("unknown field %q", m[1])
	}
	return fmt.Sprintf("unknown field %q (known: %s)", m[1], known)
}
