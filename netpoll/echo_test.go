package netpoll

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// TestEchoManyConns: thousands of concurrent connections, frames written in random
// splits; every frame must come back whole and in order.
func TestEchoManyConns(t *testing.T) {
	forEachEngine(t, func(t *testing.T, kind string) {
		const conns, clientWorkers, rounds = 2000, 40, 2
		h := newTestHandler()
		e := newEngine(t, Config{Kind: kind, Workers: 4}) // few workers: the ready queue carries load
		addr, err := e.Listen("echo", "127.0.0.1:0", h, ListenerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, clientWorkers)
		for w := 0; w < clientWorkers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				errs <- echoClient(addr, conns/clientWorkers, rounds, uint64(w))
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 5*time.Second, "all conns opened", func() bool { return h.opens.Load() == conns })
		st := e.Stats()
		if st.Accepted != conns {
			t.Errorf("Accepted = %d, want %d", st.Accepted, conns)
		}
		waitFor(t, 10*time.Second, "all conns closed", func() bool { return e.Stats().Open == 0 })
		st = e.Stats()
		if got := st.ClosedBy(ReasonPeerEOF); got != conns {
			t.Errorf("closed by peer_eof = %d, want %d (stats %+v)", got, conns, st)
		}
		if st.QueuedBytes != 0 || st.PendingBytes != 0 {
			t.Errorf("queued %d pending %d after all closed", st.QueuedBytes, st.PendingBytes)
		}
		h.checkCloses(t)
	})
}

// echoClient opens n connections, then for each round writes a random frame to each in
// random splits and reads the echoes back.
func echoClient(addr net.Addr, n, rounds int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		cs = append(cs, c)
	}
	for r := 0; r < rounds; r++ {
		want := make([][]byte, n)
		for i, c := range cs {
			p := make([]byte, rng.IntN(2000))
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			want[i] = frame(p)
			b := want[i]
			for len(b) > 0 {
				k := 1 + rng.IntN(len(b))
				if _, err := c.Write(b[:k]); err != nil {
					return fmt.Errorf("conn %d write: %w", i, err)
				}
				b = b[k:]
			}
		}
		for i, c := range cs {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := readFrame(c)
			if err != nil {
				return fmt.Errorf("conn %d round %d read: %w", i, r, err)
			}
			if !bytes.Equal(got, want[i][4:]) {
				return fmt.Errorf("conn %d round %d: echo differs (%d vs %d bytes)", i, r, len(got), len(want[i])-4)
			}
		}
	}
	return nil
}
