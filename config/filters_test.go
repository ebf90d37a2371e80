package config

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func loadFilters(t *testing.T) *Config {
	t.Helper()
	data, err := os.ReadFile("testdata/filters.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFilterEntries: a filters list holds names and names with options, and each use
// says where its options are written, for the filter's errors. The route-level keys of
// the first format are the options of the filter they name.
func TestFilterEntries(t *testing.T) {
	c := loadFilters(t)
	type use = FilterUse
	for _, w := range []struct {
		path string
		got  []FilterUse
		want []FilterUse
	}{
		{"listeners[0]", c.Listeners[0].FilterUses("listeners[0]"), []use{
			{"auth", FilterOptions{"replay": true, "skew": "60s"}, "listeners[0].filters[0].auth"},
			{"accesslog", nil, "listeners[0].filters[1].accesslog"},
		}},
		{"routes[0]", c.Routes[0].FilterUses("routes[0]"), []use{
			{"auth", nil, "routes[0].filters[0].auth"},
			{"ratelimit", FilterOptions{"rate": "2000/s", "burst": 200, "key": "device"}, "routes[0].filters[1].ratelimit"},
			{"accesslog", FilterOptions{"sample": 0.5}, "routes[0].filters[2].accesslog"},
		}},
		{"routes[1]", c.Routes[1].FilterUses("routes[1]"), []use{
			{"auth", nil, "routes[1].filters[0].auth"}, // `auth:` with nothing: no options
			{"ratelimit", FilterOptions{"rate": "100/m"}, "routes[1].ratelimit"},
		}},
		{"routes[2]", c.Routes[2].FilterUses("routes[2]"), []use{
			{"accesslog", FilterOptions{}, "routes[2].filters[0].accesslog"},
		}},
	} {
		if !reflect.DeepEqual(w.got, w.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", w.path, w.got, w.want)
		}
	}
	if u := c.Routes[2].UnusedFilterOptions("routes[2]"); len(u) != 1 || u[0].Name != "ratelimit" || u[0].OptionsPath != "routes[2].ratelimit" {
		t.Errorf("unused options of routes[2]: %+v", u)
	}
	if u := c.Routes[1].UnusedFilterOptions("routes[1]"); u != nil {
		t.Errorf("routes[1] has no unused options: %+v", u)
	}
}

// TestTodaysFiltersMeanTheSame: the files written before filters carried options
// (full.yaml is the deploy example) give each filter the options they gave it then.
func TestTodaysFiltersMeanTheSame(t *testing.T) {
	c := loadFull(t)
	if got := c.Listeners[0].FilterUses("listeners[0]"); !reflect.DeepEqual(got, []FilterUse{{"accesslog", nil, "listeners[0].filters[0].accesslog"}}) {
		t.Errorf("listeners[0]: %+v", got)
	}
	got := c.Routes[0].FilterUses("routes[0]")
	want := []FilterUse{
		{"auth", FilterOptions{"skew": "300s", "replay": true, "fail_open": false, "dry_run": false}, "routes[0].auth"},
		{"ratelimit", FilterOptions{"rate": "2000/s", "burst": 200, "key": "api", "max_keys": 100000, "fail_open": false, "dry_run": false}, "routes[0].ratelimit"},
		{"accesslog", FilterOptions{"sample": 0.1, "off": false}, "routes[0].accesslog"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("routes[0]:\n got %#v\nwant %#v", got, want)
	}
	// routes[1] lists auth only; its ratelimit options were ignored, and still are.
	if got := c.Routes[1].FilterUses("routes[1]"); len(got) != 1 || got[0].Name != "auth" || got[0].Options != nil {
		t.Errorf("routes[1]: %+v", got)
	}
}

// TestFilterEntriesRoundTrip: the config shows (admin API, JSON; --print, YAML) what it
// reads, entries in the form they were written.
func TestFilterEntriesRoundTrip(t *testing.T) {
	c := loadFilters(t)
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "- auth\n") || !strings.Contains(string(y), "- ratelimit:\n") {
		t.Errorf("YAML lost the entry forms:\n%s", y)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"filters":["auth",{"ratelimit":{"burst":200,"key":"device","rate":"2000/s"}}`) {
		t.Errorf("JSON lost the entry forms:\n%s", j)
	}
	for name, data := range map[string][]byte{"yaml": y, "json": j} {
		back, err := Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(back.Routes[0].FilterUses("r"), c.Routes[0].FilterUses("r")) ||
			!reflect.DeepEqual(back.Listeners[0].FilterUses("l"), c.Listeners[0].FilterUses("l")) {
			t.Errorf("%s round trip changed the filters:\n%s", name, data)
		}
	}
	var r FilterRef
	if err := json.Unmarshal([]byte(`{"auth":{"replay":true}}`), &r); err != nil || r.Name != "auth" || r.Options["replay"] != true {
		t.Errorf("UnmarshalJSON: %+v %v", r, err)
	}
	if err := json.Unmarshal([]byte(`{"auth":{},"accesslog":{}}`), &r); err == nil {
		t.Error("UnmarshalJSON took two filters in one entry")
	}
}

// TestFilterOptionsDecode: strict, every problem named with its path, defaults kept.
func TestFilterOptionsDecode(t *testing.T) {
	type opts struct {
		Rate  string   `yaml:"rate"`
		Burst int      `yaml:"burst"`
		Skew  Duration `yaml:"skew"`
		Tags  []string `yaml:"tags"`
	}
	o := opts{Burst: 7}
	err := FilterOptions{"rate": "1/s", "skew": "2s", "tags": []any{"a", "b"}}.Decode("p.f", &o)
	if err != nil || !reflect.DeepEqual(o, opts{Rate: "1/s", Burst: 7, Skew: Duration(2e9), Tags: []string{"a", "b"}}) {
		t.Fatalf("%+v %v", o, err)
	}
	err = FilterOptions{"burts": 1, "burst": "many", "skew": "10"}.Decode("routes[3].filters[0].x", &o)
	for _, want := range []string{
		`routes[3].filters[0].x.burts: unknown option "burts" (known: rate, burst, skew, tags)`,
		"routes[3].filters[0].x.burst: cannot unmarshal !!str `many` into int",
		`routes[3].filters[0].x.skew: "10" is not a duration`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nlacks %q", err, want)
		}
	}
	if err := FilterOptions(nil).Decode("p", &o); err != nil {
		t.Errorf("no options: %v", err)
	}
	if err := (FilterOptions{}).Decode("p", o); err == nil {
		t.Error("decoded into a non-pointer")
	}
}

// FuzzFilterOptions: whatever YAML a filters entry holds, reading it and decoding its
// options never panics, and options that decode encode back to the same values.
func FuzzFilterOptions(f *testing.F) {
	for _, s := range []string{
		"auth", "{auth: {replay: true, skew: 60s}}", "{ratelimit: {rate: 10/s, burst: 5, burts: 1}}",
		"{a: {tags: [x, y], n: 1.5}}", "{a: null}", "{a: 5}", "[a]", "{a: {1: 2}}", "{a: {b: !!binary aGk=}}",
	} {
		f.Add([]byte(s))
	}
	type opts struct {
		Rate   string   `yaml:"rate"`
		Burst  int      `yaml:"burst"`
		Skew   Duration `yaml:"skew"`
		Replay bool     `yaml:"replay"`
		Tags   []string `yaml:"tags"`
		N      float64  `yaml:"n"`
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r FilterRef
		if yaml.Unmarshal(data, &r) != nil {
			return
		}
		r.Options.Clone()
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("an entry that parsed does not marshal: %v", err)
		}
		var o opts
		if r.Options.Decode("p", &o) != nil {
			return
		}
		enc, err := EncodeOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		var o2 opts
		err = enc.Decode("p", &o2)
		if y1, y2 := mustYAML(t, o), mustYAML(t, o2); err != nil || y1 != y2 {
			t.Fatalf("%+v -> %v -> %+v (%v)", o, enc, o2, err)
		}
	})
}

func mustYAML(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
