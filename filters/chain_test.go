package filters

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// recorder is a filter that logs its phases into a shared trace and may answer early.
type recorder struct {
	name   string
	trace  *[]string
	answer int // status to answer with in Receive; 0 lets the request through
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Receive(_ context.Context, _ *codec.Request, _ *Exchange) *codec.Response {
	*r.trace = append(*r.trace, "recv:"+r.name)
	if r.answer != 0 {
		return codec.ErrorResponse(r.answer, codec.ErrUnauthorized, "no")
	}
	return nil
}
func (r *recorder) Send(_ context.Context, _ *codec.Request, resp *codec.Response, x *Exchange) {
	*r.trace = append(*r.trace, "send:"+r.name+":"+x.RejectedBy)
}

func TestChainOrderAndEarlyAnswer(t *testing.T) {
	var trace []string
	c := NewChain(&recorder{name: "a", trace: &trace}, &recorder{name: "b", trace: &trace, answer: 401}, &recorder{name: "c", trace: &trace})
	calls := 0
	next := func(context.Context, *codec.Request, *Exchange) *codec.Response {
		calls++
		return &codec.Response{Status: 200}
	}
	x := &Exchange{}
	resp := c.Handle(context.Background(), &codec.Request{}, x, next)
	if resp.Status != 401 || calls != 0 || x.RejectedBy != "b" {
		t.Fatalf("status %d, next called %d times, rejected by %q", resp.Status, calls, x.RejectedBy)
	}
	want := "recv:a recv:b send:c:b send:b:b send:a:b"
	if got := strings.Join(trace, " "); got != want {
		t.Fatalf("trace %q, want %q", got, want)
	}

	trace = nil
	c = NewChain(&recorder{name: "a", trace: &trace}, &recorder{name: "c", trace: &trace})
	x = &Exchange{}
	resp = c.Handle(context.Background(), &codec.Request{}, x, next)
	if resp.Status != 200 || calls != 1 || x.RejectedBy != "" {
		t.Fatalf("status %d, next called %d times, rejected by %q", resp.Status, calls, x.RejectedBy)
	}
	if got := strings.Join(trace, " "); got != "recv:a recv:c send:c: send:a:" {
		t.Fatalf("trace %q", got)
	}
}

func TestEmptyAndNilChains(t *testing.T) {
	var nilChain *Chain
	req, x := &codec.Request{}, &Exchange{}
	if nilChain.Receive(context.Background(), req, x) != nil || nilChain.Len() != 0 {
		t.Fatal("nil chain answered")
	}
	nilChain.Send(context.Background(), req, &codec.Response{}, x)
	resp := nilChain.Handle(context.Background(), req, x, func(context.Context, *codec.Request, *Exchange) *codec.Response { return nil })
	if resp == nil || resp.Status != 502 || resp.Header.Value("error") != codec.ErrUpstream {
		t.Fatalf("nil from next gave %+v, want a 502", resp)
	}
	if n := Join(nil, NewChain(), nil).Len(); n != 0 {
		t.Fatalf("joined empty chains have %d filters", n)
	}
}

func TestJoinKeepsOrder(t *testing.T) {
	var trace []string
	l := NewChain(&recorder{name: "l", trace: &trace})
	r := NewChain(&recorder{name: "r1", trace: &trace}, &recorder{name: "r2", trace: &trace})
	j := Join(l, nil, r)
	if got := strings.Join(j.Names(), ","); got != "l,r1,r2" {
		t.Fatalf("names %q", got)
	}
	if j.Filter("r2") == nil || j.Filter("zz") != nil {
		t.Fatal("Filter lookup wrong")
	}
}

func TestRegistryBuildErrors(t *testing.T) {
	r := NewRegistry()
	var trace []string
	if err := r.Register("rec", func(env *Env) (Filter, error) { return &recorder{name: "rec", trace: &trace}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("rec", func(env *Env) (Filter, error) { return nil, nil }); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if err := r.Register("bad", func(env *Env) (Filter, error) {
		return nil, env.OptionErrorf("rate", "%q is not N/s", "fast")
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		names []string
		want  string
	}{
		{[]string{"rec", "ratelimt"}, `routes[3].filters[1]: unknown filter "ratelimt"`},
		{[]string{"rec", "rec"}, `routes[3].filters[1]: filter "rec" already listed at filters[0]`},
		{[]string{"bad"}, `routes[3].filters[0].bad.rate: "fast" is not N/s`},
	}
	for _, c := range cases {
		_, err := r.Build("routes[3]", names(c.names...), Env{})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Build(%v) = %v, want prefix %q", c.names, err, c.want)
		}
	}
	c, err := r.Build("routes[0]", names("rec"), Env{})
	if err != nil || c.Len() != 1 {
		t.Fatalf("Build: %v, %d filters", err, c.Len())
	}
	if c, err := r.Build("routes[0]", nil, Env{}); err != nil || c.Len() != 0 {
		t.Fatalf("empty Build: %v", err)
	}
	if err := r.Register("", nil); err == nil {
		t.Fatal("empty name accepted")
	}
}

func TestMetricNameEscapes(t *testing.T) {
	got := MetricName("m", "route", `a"b\c`+"\n", "k", "v")
	want := `m{route="a\"b\\c\n",k="v"}`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if MetricName("m") != "m" {
		t.Fatal("bare name changed")
	}
}

func BenchmarkEmptyChain(b *testing.B) {
	c := NewChain()
	req, x := &codec.Request{}, &Exchange{}
	resp := &codec.Response{Status: 200}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if c.Receive(ctx, req, x) == nil {
			c.Send(ctx, req, resp, x)
		}
	}
}

func TestArrival(t *testing.T) {
	t0 := time.Unix(100, 0)
	t1 := time.Unix(200, 0)
	clock := func() time.Time { return time.Unix(300, 0) }
	req := &codec.Request{}
	if got := Arrival(req, nil, clock); !got.Equal(time.Unix(300, 0)) {
		t.Fatalf("no readings: %v", got)
	}
	req.Received = t1
	if got := Arrival(req, &Exchange{}, clock); !got.Equal(t1) {
		t.Fatalf("Received: %v", got)
	}
	if got := Arrival(req, &Exchange{Start: t0}, clock); !got.Equal(t0) {
		t.Fatalf("Start: %v", got)
	}
}

// names is a filters list of names without options, as a route lists them.
func names(ns ...string) []config.FilterUse {
	return (&config.Route{Filters: config.Filters(ns...)}).FilterUses("routes[3]")
}
