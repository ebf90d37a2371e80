package upstream

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/codec"
	"github.com/mgw-project/mgw/config"
)

// named is a backend that answers its own name, and blocks requests carrying x-block
// until released.
type named struct {
	name    string
	entered chan struct{}
	release chan struct{}
}

func (n *named) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Block") != "" {
		n.entered <- struct{}{}
		<-n.release
	}
	io.WriteString(w, n.name)
}

// namedBackends starts one named backend per name; closing the returned channel releases
// blocked requests (tests close it before their servers close).
func namedBackends(t *testing.T, names ...string) ([]string, []*named, chan struct{}) {
	var addrs []string
	var ns []*named
	rel := make(chan struct{})
	for _, name := range names {
		n := &named{name: name, entered: make(chan struct{}, 10), release: rel}
		ns = append(ns, n)
		addrs = append(addrs, serve(t, n))
	}
	return addrs, ns, rel
}

func callBody(t *testing.T, c *Cluster, req *codec.Request) string {
	t.Helper()
	resp, err := c.Call(context.Background(), req, 0)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	return string(resp.Body)
}

func TestRoundRobinEven(t *testing.T) {
	addrs, _, _ := namedBackends(t, "a", "b", "c")
	c := newCluster(t, config.Cluster{}, nil, addrs...)
	counts := map[string]int{}
	for range 30 {
		counts[callBody(t, c, apiReq("a.b"))]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if counts[n] != 10 {
			t.Errorf("distribution %v, want 10 each", counts)
			break
		}
	}
	for _, h := range c.Hosts() {
		if h.Requests != 10 || h.InFlight != 0 {
			t.Errorf("host %s: requests %d in flight %d", h.Name, h.Requests, h.InFlight)
		}
	}
}

func TestLeastRequestsPrefersIdle(t *testing.T) {
	addrs, ns, release := namedBackends(t, "a", "b")
	c := newCluster(t, config.Cluster{Policy: PolicyLeastRequests}, nil, addrs...)
	blocked := apiReq("a.b")
	blocked.Header = codec.Header{{Key: "x-block", Value: "1"}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Call(context.Background(), blocked, time.Minute)
	}()
	// Which host holds the blocked call?
	var busy string
	select {
	case <-ns[0].entered:
		busy = "a"
	case <-ns[1].entered:
		busy = "b"
	case <-time.After(5 * time.Second):
		t.Fatal("blocked call never arrived")
	}
	for i := range 20 {
		if got := callBody(t, c, apiReq("a.b")); got == busy {
			t.Fatalf("call %d went to %s, which has a request in flight; the other is idle", i, busy)
		}
	}
	for _, h := range c.Hosts() {
		want := int64(0)
		if (h.Address == addrs[0]) == (busy == "a") {
			want = 1
		}
		if h.InFlight != want {
			t.Errorf("host %s in flight %d, want %d", h.Name, h.InFlight, want)
		}
	}
	close(release)
	wg.Wait()
}

// pick never returns an unhealthy or ejected host, under either policy, and spreads over
// the rest.
func TestPickSkipsUnavailable(t *testing.T) {
	for _, policy := range []string{PolicyRoundRobin, PolicyLeastRequests} {
		t.Run(policy, func(t *testing.T) {
			c := newCluster(t, config.Cluster{Policy: policy}, nil, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
			c.hosts[1].healthy.Store(false)
			c.hosts[2].ejected.Store(true)
			seen := map[string]int{}
			for range 400 {
				h := c.pick()
				if h == nil {
					t.Fatal("no host picked with two available")
				}
				seen[h.name]++
			}
			if seen["127.0.0.1:2"]+seen["127.0.0.1:3"] != 0 || seen["127.0.0.1:1"] == 0 || seen["127.0.0.1:4"] == 0 {
				t.Errorf("picks %v", seen)
			}
			c.hosts[0].ejected.Store(true)
			c.hosts[3].healthy.Store(false)
			if h := c.pick(); h != nil {
				t.Errorf("picked %s with none available", h.name)
			}
		})
	}
}
