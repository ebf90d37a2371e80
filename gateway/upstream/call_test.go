package upstream

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

func TestCallMapping(t *testing.T) {
	type seen struct {
		method, path, host string
		header             http.Header
		body               []byte
	}
	got := make(chan seen, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.Host, r.Header.Clone(), b}
		w.Header().Set("X-Reply", "yes")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("X-Multi", "1")
		w.Header().Add("X-Multi", "2")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "drop me")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.WriteHeader(201)
		w.Write([]byte("\x1f\x8bcompressed"))
	}))
	c := newCluster(t, config.Cluster{PathPrefix: "/gw/"}, nil, addr)
	req := &codec.Request{
		Protocol:  codec.MMTP,
		Operation: "alipay.trade.pay",
		Header: codec.Header{
			{Key: "operation-type", Value: "alipay.trade.pay"},
			{Key: "app-id", Value: "wallet"},
			{Key: "device-id", Value: "d1"},
			{Key: "sign", Value: "secret-derived"},
			{Key: "nonce", Value: "n1"},
			{Key: "trace-id", Value: "t-1"},
			{Key: "x-forwarded-for", Value: "6.6.6.6"},
			{Key: "connection", Value: "x-private"},
			{Key: "x-private", Value: "hop"},
			{Key: "te", Value: "trailers"},
			{Key: "host", Value: "evil.example"},
		},
		Body: []byte("\x1f\x8bgzipped-request"),
		Gzip: true,
		Conn: codec.ConnInfo{ClientAddr: client},
	}
	resp, err := c.Call(context.Background(), req, 0)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	s := <-got
	if s.method != "POST" || s.path != "/gw/alipay.trade.pay" {
		t.Errorf("request line %s %s, want POST /gw/alipay.trade.pay", s.method, s.path)
	}
	if s.host != addr {
		t.Errorf("Host %q, want backend address %q", s.host, addr)
	}
	want := map[string]string{
		"Operation-Type":   "alipay.trade.pay",
		"App-Id":           "wallet",
		"Device-Id":        "d1",
		"Trace-Id":         "t-1",
		"X-Forwarded-For":  "192.0.2.7", // MMTP: the client's own value is replaced
		"Content-Encoding": "gzip",
		"Sign":             "",
		"Nonce":            "",
		"X-Private":        "",
		"Te":               "",
		"Connection":       "",
		"User-Agent":       "",
	}
	for k, v := range want {
		if g := s.header.Get(k); g != v {
			t.Errorf("backend header %s = %q, want %q", k, g, v)
		}
	}
	if len(s.header["Operation-Type"]) != 1 {
		t.Errorf("Operation-Type sent %d times", len(s.header["Operation-Type"]))
	}
	if !bytes.Equal(s.body, req.Body) {
		t.Errorf("body %q, want %q", s.body, req.Body)
	}

	if resp.Status != 201 || string(resp.Body) != "\x1f\x8bcompressed" || !resp.Gzip {
		t.Errorf("response %d %q gzip=%v", resp.Status, resp.Body, resp.Gzip)
	}
	for _, k := range []string{"content-encoding", "content-length", "connection", "x-hop", "keep-alive"} {
		if v, ok := resp.Header.Get(k); ok {
			t.Errorf("response header %s = %q, want dropped", k, v)
		}
	}
	if v := resp.Header.Value("x-reply"); v != "yes" {
		t.Errorf("x-reply = %q", v)
	}
	if v := resp.Header.Value("x-multi"); v != "1, 2" {
		t.Errorf("x-multi = %q, want joined", v)
	}
	var cookies []string
	for _, f := range resp.Header {
		if f.Key != strings.ToLower(f.Key) {
			t.Errorf("response key %q not lowercase", f.Key)
		}
		if f.Key == "set-cookie" {
			cookies = append(cookies, f.Value)
		}
	}
	if len(cookies) != 2 {
		t.Errorf("set-cookie entries %v, want 2 separate", cookies)
	}
}

func TestCallHTTPForwardedForAppends(t *testing.T) {
	got := make(chan http.Header, 2)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Content-Encoding", "br")
	}))
	c := newCluster(t, config.Cluster{}, nil, addr)
	req := &codec.Request{
		Protocol: codec.HTTP1, Operation: "demo.echo",
		Header: codec.Header{{Key: "x-forwarded-for", Value: "10.1.1.1"}, {Key: "content-encoding", Value: "br"}},
		Conn:   codec.ConnInfo{ClientAddr: client},
	}
	resp, err := c.Call(context.Background(), req, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := <-got
	if v := h.Get("X-Forwarded-For"); v != "10.1.1.1, 192.0.2.7" {
		t.Errorf("XFF %q, want appended", v)
	}
	if v := h.Get("Content-Encoding"); v != "br" {
		t.Errorf("non-gzip content-encoding %q, want passed through", v)
	}
	if resp.Gzip || resp.Header.Value("content-encoding") != "br" {
		t.Errorf("br response: gzip=%v header=%q", resp.Gzip, resp.Header.Value("content-encoding"))
	}
	if resp.Body != nil {
		t.Errorf("empty body = %q", resp.Body)
	}
}

func TestCallInvalidHeader(t *testing.T) {
	c := newCluster(t, config.Cluster{}, nil, closedPort(t))
	req := &codec.Request{Protocol: codec.MMTP, Operation: "a.b",
		Header: codec.Header{{Key: "x-evil", Value: "a\r\nInjected: 1"}}}
	_, err := c.Call(context.Background(), req, 0)
	e := mustUpstreamError(t, err)
	if e.Kind != Invalid || e.Status != 400 || e.Retriable() || !strings.Contains(e.Error(), "x-evil") {
		t.Errorf("got %v (kind %v status %d retriable %v)", e, e.Kind, e.Status, e.Retriable())
	}
}

// Sequential calls must reuse one kept-alive connection; a body not read to EOF would
// make net/http drop the connection after every call.
func TestCallReusesConnection(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	c := newCluster(t, config.Cluster{}, nil, s.Listener.Addr().String())
	for range 10 {
		if resp, err := c.Call(context.Background(), apiReq("a.b"), 0); err != nil || string(resp.Body) != "hello" {
			t.Fatalf("Call: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 sequential calls opened %d connections, want 1", n)
	}
}
