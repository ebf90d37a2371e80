package filters

import "testing"

func TestStateKeepsAndSweeps(t *testing.T) {
	s := NewState()
	made := 0
	mk := func() any { made++; return new(int) }
	a := s.Get("a", mk)
	s.Get("b", mk)
	if s.Sweep() != 0 || s.Len() != 2 {
		t.Fatal("sweep dropped items asked for in this generation")
	}
	if s.Get("a", mk) != a || made != 2 {
		t.Fatal("item not kept across a rebuild")
	}
	if n := s.Sweep(); n != 1 || s.Len() != 1 {
		t.Fatalf("sweep dropped %d, holds %d; want b dropped", n, s.Len())
	}
	var none *State
	if none.Get("a", mk) == a {
		t.Fatal("nil State returned a kept item")
	}
}
