package http1

import (
	"math/rand/v2"
	"testing"
)

// TestDifferentialGenerated runs both parsers on generated requests (see diff_test.go for
// the comparison and the documented classes of difference).
func TestDifferentialGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var bothAccept, onlyStd, failures int
	for i := 0; i < n; i++ {
		in := genRequest(r)
		if d := differential(in); d != "" {
			failures++
			if failures <= 10 {
				t.Errorf("input %q: %s", in, d)
			}
		}
		_, ok, _ := oursFirst(in)
		if _, _, err := parseStd(in); err == nil {
			if ok {
				bothAccept++
			} else {
				onlyStd++
			}
		}
	}
	t.Logf("%d inputs: both accept %d, only net/http accepts %d, disagreements %d", n, bothAccept, onlyStd, failures)
	if bothAccept < n/4 {
		t.Errorf("only %d of %d generated inputs accepted by both: the generator is too hostile to compare much", bothAccept, n)
	}
}
