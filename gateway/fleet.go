package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mgw-project/mgw/config"
	"github.com/mgw-project/mgw/fleet/etcdsource"
	"github.com/mgw-project/mgw/gateway/route"
)

// The fleet's config overlay (docs/fleet.md): the gateway consumes "the overlay changed"
// from fleet/etcdsource and builds the config in force as the file's config with the
// overlay's entries over it, through buildSnapshot like a SIGHUP reload.

// startFleetConfig follows fleet.etcd when the config names it, and waits up to its dial
// timeout for the first read, so an instance that can reach etcd starts with the fleet's
// routes; one that cannot serves the file's config and catches up once etcd answers.
func (g *Gateway) startFleetConfig() error {
	g.mu.Lock()
	e := g.base.Fleet.Etcd
	g.mu.Unlock()
	if e == nil {
		return nil
	}
	src, err := etcdsource.New(g, etcdsource.Options{Etcd: *e, Logger: g.log, Metrics: g.set})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.mu.Lock()
	g.etcdStop = func() { cancel(); <-done; src.Close() }
	g.mu.Unlock()
	g.etcd.Store(src)
	go func() { defer close(done); src.Run(ctx) }()
	select {
	case <-src.Synced():
	case <-time.After(e.DialTimeout.D()):
		g.log.Warn("etcd did not answer in time; serving the file's config until it does", "endpoints", e.Endpoints)
	}
	return nil
}

// CheckOverlay reports whether the file's config with o over it would be accepted,
// building and discarding its snapshot.
func (g *Gateway) CheckOverlay(o *config.Overlay) error {
	g.mu.Lock()
	cfg, demo := g.base.WithOverlay(o), g.demoAddr
	g.mu.Unlock()
	s, err := g.buildSnapshot(cfg, demo)
	if err != nil {
		return err
	}
	s.close()
	return nil
}

// ApplyOverlay makes the file's config with o over it the config in force, as a reload
// does; on error the config in force stays.
func (g *Gateway) ApplyOverlay(o *config.Overlay) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.reloadLocked(g.base.WithOverlay(o), "fleet overlay"); err != nil {
		return err
	}
	g.overlay = o
	return nil
}

// writeFleet stores an admin routing change in etcd: each route and the switches that
// differ between the table in force and its successor, in one transaction compared on
// the mod revisions this instance last saw. Called by snapHolder.Store, under the
// router's change lock.
func (g *Gateway) writeFleet(old, cur *route.Table) error {
	oc, nc := old.Config(), cur.Config()
	vals := map[string][]byte{}
	for i := range nc.Routes {
		r := &nc.Routes[i]
		k := config.RouteKey(r)
		var prev *config.Route
		for j := range oc.Routes {
			if config.RouteKey(&oc.Routes[j]) == k {
				prev = &oc.Routes[j]
			}
		}
		if prev != nil && reflect.DeepEqual(*prev, *r) {
			continue
		}
		b, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("route %q: %w", k, err)
		}
		vals[etcdsource.RouteKey(k)] = b
	}
	if !reflect.DeepEqual(oc.Switches, nc.Switches) {
		b, err := yaml.Marshal(nc.Switches)
		if err != nil {
			return fmt.Errorf("switches: %w", err)
		}
		vals[etcdsource.SwitchesKey] = b
	}
	if len(vals) == 0 {
		return nil
	}
	err := g.etcd.Load().Put(context.Background(), vals)
	switch {
	case err == nil:
		g.log.Info("admin change written to etcd", "keys", slices.Sorted(maps.Keys(vals)))
		return nil
	case errors.Is(err, etcdsource.ErrConflict):
		return fmt.Errorf("%w: %w", route.ErrConflict, err)
	default:
		return fmt.Errorf("%w: %w (nothing changed)", route.ErrUnavailable, err)
	}
}

// configView is GET /v1/config: the config in force and, in a fleet, where it came from.
type configView struct {
	*config.Config
	FleetConfig *etcdsource.Status `json:"fleet_config,omitempty"`
}

func (g *Gateway) configView() configView {
	// The config in force: routes and switches as changed live (admin API, fleet), the
	// rest as last loaded, with the listeners that are running (reloadLocked).
	c := *g.Config()
	live := g.router.Load().Config()
	c.Routes, c.Switches = live.Routes, live.Switches
	v := configView{Config: c.Redacted()}
	if src := g.etcd.Load(); src != nil {
		st := src.Status()
		v.FleetConfig = &st
	}
	return v
}
