package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/internal/fleettest"
)

// fakeGateway accepts an overlay unless one of its routes names a cluster it lacks.
type fakeGateway struct {
	mu      sync.Mutex
	applied []*config.Overlay
}

func (f *fakeGateway) CheckOverlay(o *config.Overlay) error {
	for k, r := range o.Routes {
		for c := range r.Split {
			if c != "a" && c != "b" {
				return fmt.Errorf("routes[%s].split.%s: no such cluster", k, c)
			}
		}
	}
	return nil
}

func (f *fakeGateway) ApplyOverlay(o *config.Overlay) error {
	if err := f.CheckOverlay(o); err != nil {
		return err
	}
	f.mu.Lock()
	f.applied = append(f.applied, o)
	f.mu.Unlock()
	return nil
}

func (f *fakeGateway) last() *config.Overlay {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return nil
	}
	return f.applied[len(f.applied)-1]
}

func newSource(t *testing.T, e *fleettest.Etcd, gw Gateway) *Source {
	s, err := New(gw, Options{Etcd: config.FleetEtcd{Endpoints: []string{e.Endpoint}, Prefix: "/p/", DialTimeout: config.Duration(2 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestResyncKeepsGoodAndRefusesBad reads the prefix twice (a resync after a watch that
// could not resume): one bad entry is refused while the others of the same read apply,
// and a delete made while nobody watched is seen.
func TestResyncKeepsGoodAndRefusesBad(t *testing.T) {
	e := fleettest.StartEtcd(t)
	gw := &fakeGateway{}
	s := newSource(t, e, gw)
	ctx := context.Background()
	for k, v := range map[string]string{
		"/p/routes/x.ok":     "split: {a: 100}",
		"/p/routes/x.bad":    "split: {zzz: 100}",
		"/p/routes/x.typo":   "splitt: {a: 1}",
		"/p/clusters/c":      "hosts: ['127.0.0.1:1']",
		"/p/switches":        "mesh_only_apps: [w]",
		"/p/something/else":  "x",
		"/other/routes/x.no": "split: {a: 100}",
	} {
		e.Put(t, k, v)
	}
	if _, err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	o := gw.last()
	if o == nil || slices.Collect(maps.Keys(o.Routes))[0] != "x.ok" || len(o.Routes) != 1 || o.Clusters["c"].Name != "c" || o.Switches == nil {
		t.Fatalf("overlay in force: %+v", o)
	}
	st := s.Status()
	var keys []string
	for _, r := range st.Refused {
		keys = append(keys, r.Key)
	}
	if fmt.Sprint(keys) != "[/p/routes/x.bad /p/routes/x.typo /p/something/else]" || st.RefusedTotal != 3 {
		t.Fatalf("refused: %+v", st.Refused)
	}
	// Changes while nobody watched: a delete, a fix.
	e.Delete(t, "/p/routes/x.ok")
	e.Put(t, "/p/routes/x.bad", "split: {b: 100}")
	if _, err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	o = gw.last()
	if _, ok := o.Routes["x.ok"]; ok || o.Routes["x.bad"].Split["b"] != 100 {
		t.Fatalf("after the resync: %+v", o.Routes)
	}
	if st := s.Status(); len(st.Refused) != 2 || st.RefusedTotal != 3 {
		t.Fatalf("after the resync: refused %+v, total %d (the fixed entry gone, the others not counted again)", st.Refused, st.RefusedTotal)
	}
	// A refused entry deleted while nobody watched: an admin write of that key compares
	// against "absent", not the revision it had.
	e.Delete(t, "/p/routes/x.typo")
	if _, err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, map[string][]byte{RouteKey("x.typo"): []byte("split: {a: 100}")}); err != nil {
		t.Fatalf("write of a key deleted while unwatched: %v", err)
	}
}

// TestPutComparesModRevision: a write derived from a revision that is no longer the
// key's is refused with ErrConflict, and nothing is written.
func TestPutComparesModRevision(t *testing.T) {
	e := fleettest.StartEtcd(t)
	gw := &fakeGateway{}
	s := newSource(t, e, gw)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Synced()
	if err := s.Put(ctx, map[string][]byte{RouteKey("x.y"): []byte("split: {a: 100}")}); err != nil {
		t.Fatalf("first write (key absent): %v", err)
	}
	waitRoute(t, gw, "x.y", "a")
	// Another operator writes; this instance's view is older than etcd's until the watch
	// delivers. Pin the view to the old revision to model exactly that window.
	s.mu.Lock()
	stale := s.modRev[RouteKey("x.y")]
	s.mu.Unlock()
	e.Put(t, "/p/routes/x.y", "split: {b: 100}")
	waitRoute(t, gw, "x.y", "b")
	s.mu.Lock()
	s.modRev[RouteKey("x.y")] = stale
	s.mu.Unlock()
	err := s.Put(ctx, map[string][]byte{RouteKey("x.y"): []byte("split: {a: 50, b: 50}"), SwitchesKey: []byte("{}")})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "/p/routes/x.y") {
		t.Fatalf("stale write: %v", err)
	}
	if _, ok := e.Get(t, "/p/switches"); ok {
		t.Fatal("a refused transaction wrote part of its keys")
	}
}

func waitRoute(t *testing.T, gw *fakeGateway, key, cluster string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		if o := gw.last(); o != nil && o.Routes[key].Split[cluster] == 100 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("route %s to %s not applied: %+v", key, cluster, gw.last())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
