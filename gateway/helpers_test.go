package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/codec/mmtp/client"
	"github.com/mgw-project/mgw/config"
)

// runGateway parses yml, builds and starts an in-process gateway with opts (its logs and
// access log discarded unless opts gives them), and closes it when the test ends.
func runGateway(t testing.TB, yml string, opts Options) *Gateway {
	t.Helper()
	cfg, err := config.Parse([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if opts.AccessLog == nil {
		opts.AccessLog = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// handle is serveAPI for a test that waits for the answer.
func (g *Gateway) handle(req *codec.Request) *codec.Response {
	ch := make(chan *codec.Response, 1)
	g.serveAPI(req, func(resp *codec.Response) { ch <- resp })
	return <-ch
}

// dialMMTP opens an MMTP client connection to addr, closed when the test ends.
func dialMMTP(t testing.TB, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
