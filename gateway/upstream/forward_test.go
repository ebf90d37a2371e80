package upstream

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

func TestForwardHeadersAndTarget(t *testing.T) {
	type seen struct {
		method, uri, host string
		header            http.Header
		te                []string
		body              string
	}
	got := make(chan seen, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header.Clone(), r.TransferEncoding, string(b)}
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "x")
		w.Header().Set("X-Kept", "k")
		w.WriteHeader(207)
		io.WriteString(w, "pong")
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	resp, err := c.Forward(context.Background(), &ProxyRequest{
		Method: "PUT",
		Target: "/a%2Fb//c?x=1&y=%20",
		Host:   "api.example.com",
		Header: codec.Header{
			{Key: "x-forwarded-for", Value: "10.0.0.1"},
			{Key: "connection", Value: "keep-alive, x-secret"},
			{Key: "x-secret", Value: "s"},
			{Key: "keep-alive", Value: "timeout=5"},
			{Key: "x-app", Value: "a"},
			{Key: "expect", Value: "100-continue"},
		},
		Body:          strings.NewReader("ping"),
		ContentLength: -1,
		ClientAddr:    client,
	})
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := <-got
	if s.method != "PUT" || s.uri != "/a%2Fb//c?x=1&y=%20" || s.host != "api.example.com" {
		t.Errorf("backend saw %s %s Host %s", s.method, s.uri, s.host)
	}
	if len(s.te) != 1 || s.te[0] != "chunked" || s.body != "ping" {
		t.Errorf("body %q te %v, want chunked ping", s.body, s.te)
	}
	if v := s.header.Get("X-Forwarded-For"); v != "10.0.0.1, 192.0.2.7" {
		t.Errorf("XFF %q", v)
	}
	for _, k := range []string{"X-Secret", "Keep-Alive", "Expect"} {
		if v := s.header.Get(k); v != "" {
			t.Errorf("backend got %s: %q", k, v)
		}
	}
	if s.header.Get("X-App") != "a" {
		t.Errorf("X-App lost")
	}
	if resp.Status != 207 || string(b) != "pong" {
		t.Errorf("response %d %q", resp.Status, b)
	}
	if resp.Header.Value("x-hop") != "" || resp.Header.Value("connection") != "" || resp.Header.Value("x-kept") != "k" {
		t.Errorf("response header %v", resp.Header)
	}
	if n := c.InFlight(); n != 0 {
		t.Errorf("in flight after Close = %d", n)
	}
}
