package filters

import "sync"

// State keeps filter state that must outlive one build of a chain: a route's replay
// store (or a replayed request would pass right after a config reload) and its rate-limit
// buckets (or a reload would hand every key a fresh burst). The Registry holds one and
// hands it to factories as Env.State.
//
// Items are keyed by a string the filter makes from the route's label and whatever
// parameters make old state unusable (a table's capacity, its key kind), so a changed
// route gets fresh state and an unchanged one keeps its own. Sweep drops what the latest
// builds did not ask for, so removed routes release their memory.
type State struct {
	mu    sync.Mutex
	items map[string]*stateItem
	gen   uint64
}

type stateItem struct {
	v   any
	gen uint64 // the generation that last asked for it
}

// NewState returns an empty State.
func NewState() *State { return &State{items: make(map[string]*stateItem)} }

// Get returns the item under key, making it with mk when absent. Safe for concurrent use;
// called at Build, not per request. A nil State always makes a fresh item.
func (s *State) Get(key string, mk func() any) any {
	if s == nil {
		return mk()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[key]
	if !ok {
		it = &stateItem{v: mk()}
		s.items[key] = it
	}
	it.gen = s.gen
	return it.v
}

// Peek returns the item under key, or nil, without marking it used. Metrics gauges read
// stores through it so that a swept store is not kept alive by its gauge.
func (s *State) Peek(key string) any {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.items[key]; ok {
		return it.v
	}
	return nil
}

// Sweep drops every item not asked for since the previous Sweep and returns how many it
// dropped. Call it after building every chain of a new configuration.
func (s *State) Sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, it := range s.items {
		if it.gen != s.gen {
			delete(s.items, k)
			n++
		}
	}
	s.gen++
	return n
}

// Len returns the number of items held.
func (s *State) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}
