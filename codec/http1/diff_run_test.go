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
		for r.IntN(3) == 0 { // pipelining: more requests in the same buffer
			in = append(in, genRequest(r)...)
		}
		if d := differential(in); d != "" {
			failures++
			if failures <= 10 {
				t.Errorf("input %q: %s", in, d)
			}
		}
		reqs, _, _ := parseStream(in, nil, whole)
		if _, err := readStd(newStdReader(in)); err == nil {
			if len(reqs) > 0 {
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
