// Package etcdsource follows a config overlay kept in etcd (docs/fleet.md): under a
// prefix, routes/<route key>, clusters/<name> and switches, each the YAML of one entry.
// It reads the prefix, hands the overlay to the gateway, and watches for changes from the
// revision it read; it writes entries for the admin API with a compare on their mod
// revision, so two operators cannot overwrite each other.
//
// An entry that does not parse, or whose change the gateway refuses, is refused: logged,
// counted and listed in Status, and the last good value of its key stays in force. etcd
// being down changes nothing in force; the client reconnects, and a watch that cannot
// resume (compaction, a canceled stream) is replaced by a full read and a new watch from
// its revision.
package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/mgw-project/mgw/config"
)

// ErrConflict is returned (wrapped) by Put when a key changed in etcd since the revision
// the change was derived from.
var ErrConflict = errors.New("changed in etcd since it was read")

// Gateway is what the source drives: Check builds the config an overlay makes without
// publishing it, Apply publishes it. Both are called from one goroutine at a time.
type Gateway interface {
	CheckOverlay(o *config.Overlay) error
	ApplyOverlay(o *config.Overlay) error
}

// Options configure a Source.
type Options struct {
	Etcd    config.FleetEtcd
	Logger  *slog.Logger
	Metrics *metrics.Set
}

// Source follows one etcd prefix.
type Source struct {
	cli    *client
	given  []string // the endpoints as configured, for Status
	prefix string
	tmo    time.Duration
	log    *slog.Logger
	gw     Gateway

	applied, refusedN *metrics.Counter

	mu       sync.Mutex
	good     map[string]entry // relative key -> the value in force
	modRev   map[string]int64 // relative key -> its mod revision in etcd, as last seen
	refused  map[string]Refusal
	rev      int64 // the etcd revision read up to
	appliedR int64 // the revision of the overlay in force
	synced   bool
	lastErr  string
	total    uint64
	syncedCh chan struct{}
}

// entry is one parsed value; exactly one of its fields is set, by the key's kind.
type entry struct {
	route    *config.Route
	cluster  *config.Cluster
	switches *config.Switches
}

// Refusal is an entry that is in etcd but not in force.
type Refusal struct {
	Key      string    `json:"key"`
	Revision int64     `json:"revision"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}

// Status is what /v1/config shows of the source.
type Status struct {
	Endpoints     []string  `json:"endpoints"`
	Prefix        string    `json:"prefix"`
	Synced        bool      `json:"synced"`   // a full read succeeded at least once
	Revision      int64     `json:"revision"` // etcd revision read up to
	Applied       int64     `json:"applied_revision"`
	Entries       []string  `json:"entries"` // keys in force
	Refused       []Refusal `json:"refused"`
	RefusedTotal  uint64    `json:"refused_total"`
	LastEtcdError string    `json:"last_etcd_error,omitempty"`
}

// New connects lazily: it does not wait for etcd, which may be down at start.
func New(gw Gateway, opts Options) (*Source, error) {
	e := opts.Etcd
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	cli, err := newClient(e.Endpoints, e.DialTimeout.D())
	if err != nil {
		return nil, fmt.Errorf("fleet.etcd.%w", err)
	}
	s := &Source{cli: cli, given: e.Endpoints, prefix: e.Prefix, tmo: e.DialTimeout.D(), log: log.With("component", "fleet.etcd"), gw: gw,
		applied:  set.GetOrCreateCounter("mgw_fleet_config_applied_total"),
		refusedN: set.GetOrCreateCounter("mgw_fleet_config_refused_total"),
		good:     map[string]entry{}, modRev: map[string]int64{}, refused: map[string]Refusal{},
		syncedCh: make(chan struct{})}
	set.GetOrCreateGauge("mgw_fleet_config_revision", func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.appliedR)
	})
	return s, nil
}

// Close ends the client and its watch; Run returns once its context is done.
func (s *Source) Close() error {
	s.cli.close()
	return nil
}

// Synced is closed after the first full read was applied.
func (s *Source) Synced() <-chan struct{} { return s.syncedCh }

// Run reads and watches until ctx is done.
func (s *Source) Run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		rev, err := s.sync(ctx)
		if err != nil {
			s.etcdErr("read", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Second) // back within a second of etcd (docs/fleet.md)
			continue
		}
		t0 := time.Now()
		err = s.watch(ctx, rev+1)
		if ctx.Err() != nil {
			return
		}
		s.etcdErr("watch", err)
		if time.Since(t0) > time.Second {
			wait = 100 * time.Millisecond
			continue
		}
		// A watch that fails at once (a proxy, no leader): read again only after a pause,
		// not in a loop.
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (s *Source) etcdErr(what string, err error) {
	s.mu.Lock()
	s.lastErr = fmt.Sprintf("%s: %v", what, err)
	s.mu.Unlock()
	s.log.Warn("etcd unavailable; the last good config stays in force", "op", what, "err", err)
}

// sync reads the whole prefix and applies it: the start, and the resync after a watch
// that could not go on.
func (s *Source) sync(ctx context.Context) (int64, error) {
	c, cancel := context.WithTimeout(ctx, s.tmo)
	defer cancel()
	rev, kvs, err := s.cli.rangePrefix(c, s.prefix)
	if err != nil {
		return 0, err
	}
	raw := map[string][]byte{}
	revs := map[string]int64{}
	for _, kv := range kvs {
		k := strings.TrimPrefix(string(kv.Key), s.prefix)
		raw[k], revs[k] = append([]byte{}, kv.Value...), kv.ModRevision // empty is a value, nil a delete
	}
	s.mu.Lock()
	changes := map[string][]byte{}
	for k := range s.good {
		if _, ok := raw[k]; !ok {
			changes[k] = nil // deleted while we were not watching
		}
	}
	for k := range s.modRev {
		if _, ok := raw[k]; !ok {
			revs[k] = 0 // gone from etcd: commit forgets its revision and refusal
		}
	}
	s.mu.Unlock()
	maps.Copy(changes, raw)
	s.apply(changes, revs, rev)
	s.mu.Lock()
	s.rev, s.lastErr = rev, ""
	if !s.synced {
		s.synced = true
		close(s.syncedCh)
	}
	s.mu.Unlock()
	s.log.Info("read the fleet config from etcd", "prefix", s.prefix, "revision", rev, "entries", len(raw))
	return rev, nil
}

func (s *Source) watch(ctx context.Context, from int64) error {
	return s.cli.watch(ctx, s.prefix, from, func(rev int64, evs []event) {
		changes := map[string][]byte{}
		revs := map[string]int64{}
		for _, ev := range evs {
			k := strings.TrimPrefix(string(ev.KV.Key), s.prefix)
			if ev.Type == "DELETE" {
				changes[k], revs[k] = nil, 0
			} else {
				// A put of an empty value still is a value: never nil, which means deleted.
				changes[k], revs[k] = append([]byte{}, ev.KV.Value...), ev.KV.ModRevision
			}
		}
		s.apply(changes, revs, rev)
		s.mu.Lock()
		s.rev = rev
		s.mu.Unlock()
	})
}

// apply takes changed keys (nil value: deleted) into the overlay. The whole batch is
// tried first; if the gateway refuses it, each key is tried alone on top of what is in
// force, so one bad entry does not hold back the others.
func (s *Source) apply(changes map[string][]byte, revs map[string]int64, rev int64) {
	s.mu.Lock()
	good := maps.Clone(s.good)
	s.mu.Unlock()
	parsed := map[string]*entry{} // nil: delete
	var refused []Refusal
	for _, k := range slices.Sorted(maps.Keys(changes)) {
		v := changes[k]
		if v == nil {
			parsed[k] = nil
			continue
		}
		e, err := parseEntry(k, v)
		if err != nil {
			refused = append(refused, Refusal{Key: s.prefix + k, Revision: revs[k], Error: err.Error()})
			continue
		}
		parsed[k] = e
	}
	if len(parsed) == 0 {
		s.commit(good, nil, refused, revs, rev) // refusals only, or nothing new
		return
	}
	cand := with(good, parsed)
	if err := s.gw.ApplyOverlay(overlay(cand)); err == nil {
		s.commit(cand, parsed, refused, revs, rev)
		return
	} else if len(parsed) == 1 {
		for k := range parsed {
			refused = append(refused, Refusal{Key: s.prefix + k, Revision: revs[k], Error: err.Error()})
		}
		s.commit(good, nil, refused, revs, rev)
		return
	}
	ok := map[string]*entry{}
	for _, k := range slices.Sorted(maps.Keys(parsed)) {
		try := with(with(good, ok), map[string]*entry{k: parsed[k]})
		if err := s.gw.CheckOverlay(overlay(try)); err != nil {
			refused = append(refused, Refusal{Key: s.prefix + k, Revision: revs[k], Error: err.Error()})
			continue
		}
		ok[k] = parsed[k]
	}
	cand = with(good, ok)
	if err := s.gw.ApplyOverlay(overlay(cand)); err != nil {
		// Each key passed alone but not together: keep what is in force.
		for k := range ok {
			refused = append(refused, Refusal{Key: s.prefix + k, Revision: revs[k], Error: err.Error()})
		}
		s.commit(good, nil, refused, revs, rev)
		return
	}
	s.commit(cand, ok, refused, revs, rev)
}

// commit records the overlay in force and the refusals. Mod revisions are recorded after
// the apply: an admin change derived from the table in force then never compares against
// a revision newer than that table (it would overwrite a change it has not seen).
func (s *Source) commit(good map[string]entry, took map[string]*entry, refused []Refusal, revs map[string]int64, rev int64) {
	now := time.Now()
	s.mu.Lock()
	s.good = good
	for k := range took {
		delete(s.refused, k)
	}
	for k, r := range revs {
		if r == 0 {
			delete(s.modRev, k)
			delete(s.refused, k)
		} else {
			s.modRev[k] = r
		}
	}
	fresh := refused[:0]
	for _, r := range refused {
		k := strings.TrimPrefix(r.Key, s.prefix)
		if old, ok := s.refused[k]; ok && old.Revision == r.Revision {
			continue // the same value read again (a resync): refused once
		}
		r.At = now
		s.refused[k] = r
		s.total++
		fresh = append(fresh, r)
	}
	refused = fresh
	s.appliedR = rev
	s.mu.Unlock()
	s.refusedN.Add(len(refused))
	for _, r := range refused {
		s.log.Error("refused a fleet config entry; the last good config stays", "key", r.Key, "revision", r.Revision, "err", r.Error)
	}
	if len(took) > 0 {
		s.applied.Inc()
		s.log.Info("applied the fleet config", "revision", rev, "changed", slices.Sorted(maps.Keys(took)), "entries", len(good))
	}
}

func with(good map[string]entry, ch map[string]*entry) map[string]entry {
	n := maps.Clone(good)
	for k, e := range ch {
		if e == nil {
			delete(n, k)
		} else {
			n[k] = *e
		}
	}
	return n
}

func overlay(m map[string]entry) *config.Overlay {
	o := &config.Overlay{Routes: map[string]config.Route{}, Clusters: map[string]config.Cluster{}}
	for _, e := range m {
		switch {
		case e.route != nil:
			o.Routes[config.RouteKey(e.route)] = *e.route
		case e.cluster != nil:
			o.Clusters[e.cluster.Name] = *e.cluster
		case e.switches != nil:
			o.Switches = e.switches
		}
	}
	return o
}

// parseEntry reads the value of a key relative to the prefix.
func parseEntry(k string, v []byte) (*entry, error) {
	switch {
	case strings.HasPrefix(k, "routes/"):
		r, err := config.ParseRoute(strings.TrimPrefix(k, "routes/"), v)
		if err != nil {
			return nil, err
		}
		return &entry{route: &r}, nil
	case strings.HasPrefix(k, "clusters/"):
		c, err := config.ParseCluster(strings.TrimPrefix(k, "clusters/"), v)
		if err != nil {
			return nil, err
		}
		return &entry{cluster: &c}, nil
	case k == "switches":
		sw, err := config.ParseSwitches(v)
		if err != nil {
			return nil, err
		}
		return &entry{switches: &sw}, nil
	}
	return nil, fmt.Errorf("unknown key: want routes/<route key>, clusters/<name> or switches under the prefix")
}

// Status is a snapshot for /v1/config.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Endpoints: s.given, Prefix: s.prefix, Synced: s.synced, Revision: s.rev,
		Applied: s.appliedR, Entries: []string{}, Refused: []Refusal{}, RefusedTotal: s.total, LastEtcdError: s.lastErr}
	for _, k := range slices.Sorted(maps.Keys(s.good)) {
		st.Entries = append(st.Entries, s.prefix+k)
	}
	for _, k := range slices.Sorted(maps.Keys(s.refused)) {
		st.Refused = append(st.Refused, s.refused[k])
	}
	return st
}

// RouteKey and SwitchesKey name the etcd keys (relative to the prefix) of the admin API's
// changes.
func RouteKey(key string) string { return "routes/" + key }

const SwitchesKey = "switches"

// Put writes values (relative keys) in one transaction that succeeds only if each key's
// mod revision is still the one last seen (0: absent), and fails with ErrConflict
// otherwise. The change reaches this instance through the watch like any other.
func (s *Source) Put(ctx context.Context, values map[string][]byte) error {
	s.mu.Lock()
	keys := slices.Sorted(maps.Keys(values))
	full := make([]string, len(keys))
	vals := make([][]byte, len(keys))
	revs := make([]int64, len(keys))
	for i, k := range keys {
		full[i], vals[i], revs[i] = s.prefix+k, values[k], s.modRev[k]
	}
	s.mu.Unlock()
	c, cancel := context.WithTimeout(ctx, s.tmo)
	defer cancel()
	ok, err := s.cli.putIfUnchanged(c, full, vals, revs)
	if err != nil {
		return fmt.Errorf("fleet.etcd: writing %s: %w", strings.Join(keys, ", "), err)
	}
	if !ok {
		return fmt.Errorf("fleet.etcd: %s%s: %w; read it again and retry", s.prefix, strings.Join(keys, ", "+s.prefix), ErrConflict)
	}
	return nil
}
