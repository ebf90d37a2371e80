package filters_test

import (
	"context"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/filters"
	"github.com/mgw-project/mgw/filters/builtin"
)

// stampOptions are the options of an embedding program's filter, "stamp".
type stampOptions struct {
	Header string `yaml:"header"`
	Value  string `yaml:"value"`
}

// stamp adds a header to every request it sees.
type stamp struct{ opts stampOptions }

func (s *stamp) Name() string { return "stamp" }
func (s *stamp) Receive(_ context.Context, req *codec.Request, _ *filters.Exchange) *codec.Response {
	req.Header = append(req.Header, codec.Field{Key: s.opts.Header, Value: s.opts.Value})
	return nil
}
func (s *stamp) Send(context.Context, *codec.Request, *codec.Response, *filters.Exchange) {}

// A program that embeds mgw registers its own filter beside the built-ins, and hands the
// registry to gateway.New (gateway.Options{Filters: reg}); configs then name it like any
// other, with options that only the filter decodes and checks.
func ExampleRegistry_Register() {
	reg := builtin.NewRegistry()
	err := reg.Register("stamp", func(env *filters.Env) (filters.Filter, error) {
		o := stampOptions{Header: "x-stamp"} // the defaults, before the options written
		if err := env.DecodeOptions(&o); err != nil {
			return nil, err
		}
		if o.Value == "" {
			return nil, env.OptionErrorf("value", "missing")
		}
		return &stamp{opts: o}, nil
	})
	if err != nil {
		panic(err)
	}

	// What Build is given comes from a config's route (or listener), as mgw.yaml has it.
	var route config.Route
	for _, doc := range []string{
		`{api: shop.*, filters: [{stamp: {value: blue}}]}`,
		`{api: shop.*, filters: [{stamp: {valeu: blue}}]}`,
	} {
		if err := yaml.Unmarshal([]byte(doc), &route); err != nil {
			panic(err)
		}
		chain, err := reg.Build("routes[0]", route.FilterUses("routes[0]"), filters.Env{})
		if err != nil {
			fmt.Println(err)
			continue
		}
		req := &codec.Request{Operation: "shop.buy"}
		chain.Receive(context.Background(), req, &filters.Exchange{})
		fmt.Printf("%s: %s\n", req.Header[0].Key, req.Header.Value("x-stamp"))
	}
	// Output:
	// x-stamp: blue
	// routes[0].filters[0].stamp.valeu: unknown option "valeu" (known: header, value)
}
