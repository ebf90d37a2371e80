package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Filters are modules (design.md): config holds a filter's name and its options as
// written, and the filter, once built, is the only one that decodes, defaults and
// validates them (filters.Env.DecodeOptions). config checks only the list itself: names,
// duplicates, and where the options are written.

// FilterOptions are one filter's options as written: a mapping with string keys, kept
// raw for the filter to decode. nil means none were written. Values are what YAML (or
// JSON) decodes to: string, int, float64, bool, nil, []any, map[string]any.
type FilterOptions map[string]any

// FilterRef is one item of a filters list: a registered filter's name alone (`auth`) or a
// one-key mapping from the name to its options (`{auth: {replay: true}}`). It reads and
// writes in that form, in YAML and JSON.
type FilterRef struct {
	Name    string        `yaml:"-" json:"-"`
	Options FilterOptions `yaml:"-" json:"-"`
}

// FilterList is a listener's or route's filters, in the order they run.
type FilterList []FilterRef

// Filters builds a list of names without options, for configs written in Go.
func Filters(names ...string) FilterList {
	l := make(FilterList, len(names))
	for i, n := range names {
		l[i] = FilterRef{Name: n}
	}
	return l
}

// Index returns the position of the filter named name, or -1.
func (l FilterList) Index(name string) int {
	return slices.IndexFunc(l, func(r FilterRef) bool { return r.Name == name })
}

// Has reports whether the list names the filter.
func (l FilterList) Has(name string) bool { return l.Index(name) >= 0 }

// Names returns the filters' names, in order.
func (l FilterList) Names() []string {
	out := make([]string, len(l))
	for i, r := range l {
		out[i] = r.Name
	}
	return out
}

// UnmarshalYAML reads `name` or `{name: options}`. Errors are yaml TypeErrors carrying the
// line, so Parse reports them with the field path like any other.
func (r *FilterRef) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		*r = FilterRef{Name: n.Value}
		return nil
	case n.Kind == yaml.MappingNode && len(n.Content) == 2 && n.Content[0].Kind == yaml.ScalarNode:
		var opts FilterOptions
		if err := opts.UnmarshalYAML(n.Content[1]); err != nil {
			return err
		}
		*r = FilterRef{Name: n.Content[0].Value, Options: opts}
		return nil
	}
	return typeError(n, "a filter is a name (auth) or a name with its options ({auth: {replay: true}})")
}

// MarshalYAML writes the name alone when there are no options.
func (r FilterRef) MarshalYAML() (any, error) {
	if r.Options == nil {
		return r.Name, nil
	}
	return map[string]FilterOptions{r.Name: r.Options}, nil
}

// MarshalJSON writes "name" or {"name": {...}}, as MarshalYAML does.
func (r FilterRef) MarshalJSON() ([]byte, error) {
	if r.Options == nil {
		return json.Marshal(r.Name)
	}
	return json.Marshal(map[string]FilterOptions{r.Name: r.Options})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *FilterRef) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*r = FilterRef{Name: name}
		return nil
	}
	var m map[string]FilterOptions
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
		return fmt.Errorf("a filter is a name (\"auth\") or a name with its options ({\"auth\": {\"replay\": true}}), not %s", truncate(string(b), 64))
	}
	for n, o := range m {
		*r = FilterRef{Name: n, Options: o}
	}
	return nil
}

// UnmarshalYAML reads a mapping (or null, for none). The options must survive JSON, as
// the admin API shows the config in JSON: so keys are strings, and nothing is binary.
func (o *FilterOptions) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*o = nil
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return typeError(n, "a filter's options are a mapping like {replay: true}")
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return typeError(n, "a filter's options are a mapping with names for keys")
	}
	if _, err := json.Marshal(m); err != nil {
		return typeError(n, "a filter's options are a mapping with names for keys (not one JSON can hold)")
	}
	if m == nil {
		m = map[string]any{}
	}
	*o = m
	return nil
}

func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
}

// Clone returns a deep copy of o.
func (o FilterOptions) Clone() FilterOptions {
	if o == nil {
		return nil
	}
	return cloneAny(map[string]any(o)).(map[string]any)
}

func cloneAny(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = cloneAny(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneAny(x)
		}
		return out
	}
	return v // scalars
}

// Clone returns a deep copy of l.
func (l FilterList) Clone() FilterList {
	if l == nil {
		return nil
	}
	out := make(FilterList, len(l))
	for i, r := range l {
		out[i] = FilterRef{Name: r.Name, Options: r.Options.Clone()}
	}
	return out
}

// EncodeOptions turns a filter's typed options (a struct with yaml tags, as the filter
// decodes them) into FilterOptions, for configs written in Go and tests.
func EncodeOptions(v any) (FilterOptions, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode filter options: %w", err)
	}
	var o FilterOptions
	if err := yaml.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("encode filter options: %w", err)
	}
	return o, nil
}

// Decode decodes o into v, a pointer to a struct whose fields carry yaml tags, strictly: a
// key that is no field of v, or a value of the wrong type, is an error naming
// `path.key`. Keys absent from o leave v's fields as they are (the filter's defaults
// come after). Every problem is reported, joined with errors.Join.
func (o FilterOptions) Decode(path string, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("%s: options decode into a pointer to a struct, not %T", path, v)
	}
	st := rv.Elem()
	fields := map[string]int{}
	var known []string
	for i := range st.NumField() {
		f := st.Type().Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		fields[tag] = i
		known = append(known, tag)
	}
	var errs []error
	for _, k := range sortedKeys(o) {
		i, ok := fields[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s.%s: unknown option %q (known: %s)", path, truncate(k, 64), truncate(k, 64), strings.Join(known, ", ")))
			continue
		}
		var n yaml.Node
		if err := n.Encode(o[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %v", path, k, err))
			continue
		}
		if err := n.Decode(st.Field(i).Addr().Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %s", path, k, yamlMessage(err)))
		}
	}
	return errors.Join(errs...)
}

var yamlPrefix = regexp.MustCompile(`^(yaml: unmarshal errors:\n\s*)?(line \d+: )?`)

// yamlMessage strips what locates an error in a document that was never a file: the line
// numbers of a node made from the options.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = yamlPrefix.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return yamlPrefix.ReplaceAllString(err.Error(), "")
}

// FilterUse is one filter of a chain as it is built: the name, the options and where they
// are written (or would be: `routes[3].filters[1].ratelimit`), for the filter's errors.
type FilterUse struct {
	Name        string
	Options     FilterOptions
	OptionsPath string
}

// routeOptionKeys are the route-level option keys of the first config format
// (`filters: [ratelimit]` with `ratelimit: {rate: 10/s}` beside it). They still read as
// the options of the filter of that name; the filters entry (`{ratelimit: {...}}`) is the
// preferred form, the only one for other filters and for listeners.
func (r *Route) routeOptionKeys() []struct {
	name string
	opts FilterOptions
} {
	return []struct {
		name string
		opts FilterOptions
	}{{"auth", r.Auth}, {"ratelimit", r.RateLimit}, {"accesslog", r.AccessLog}}
}

// FilterUses returns the listener's filters as a chain is built from them; path is the
// listener's ("listeners[0]").
func (l *Listener) FilterUses(path string) []FilterUse { return uses(path, l.Filters) }

// FilterUses returns the route's filters as a chain is built from them, with the
// route-level option keys (auth:, ratelimit:, accesslog:) as the options of the filter
// they name; path is the route's ("routes[3]"). Validate refuses options given both ways.
func (r *Route) FilterUses(path string) []FilterUse {
	out := uses(path, r.Filters)
	for _, k := range r.routeOptionKeys() {
		if i := r.Filters.Index(k.name); i >= 0 && k.opts != nil && out[i].Options == nil {
			out[i].Options, out[i].OptionsPath = k.opts, path+"."+k.name
		}
	}
	return out
}

// UnusedFilterOptions returns the route-level option keys set for a filter the route
// does not list, as uses (their options are checked, then ignored, as they always were).
func (r *Route) UnusedFilterOptions(path string) []FilterUse {
	var out []FilterUse
	for _, k := range r.routeOptionKeys() {
		if k.opts != nil && !r.Filters.Has(k.name) {
			out = append(out, FilterUse{Name: k.name, Options: k.opts, OptionsPath: path + "." + k.name})
		}
	}
	return out
}

func uses(path string, l FilterList) []FilterUse {
	out := make([]FilterUse, len(l))
	for i, r := range l {
		out[i] = FilterUse{Name: r.Name, Options: r.Options, OptionsPath: fmt.Sprintf("%s.filters[%d].%s", path, i, r.Name)}
	}
	return out
}
