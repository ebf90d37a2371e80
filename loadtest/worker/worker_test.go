package worker

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
)

// The test binary doubles as the worker executable: with this variable set it runs Main
// instead of the tests, exactly as `mgw loadtest worker` does.
const workerEnv = "MGW_LOADTEST_WORKER_TEST"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(Main(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func testLauncher() Launcher {
	return Launcher{Path: os.Args[0], Env: []string{workerEnv + "=1"}}
}

func TestSplit(t *testing.T) {
	p, err := Split(50000, 19744, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.PerWorker) != 3 || p.PerWorker[0]+p.PerWorker[1]+p.PerWorker[2] != 50000 || p.Offsets[2] != p.PerWorker[0]+p.PerWorker[1] {
		t.Fatalf("%+v", p)
	}
	for _, k := range p.PerWorker {
		if k > 19744 {
			t.Fatalf("worker over its limit: %v", p.PerWorker)
		}
	}
	if p, _ := Split(10, 100, 4); len(p.PerWorker) != 4 || p.PerWorker[0] != 3 || p.PerWorker[3] != 2 {
		t.Fatalf("min workers: %+v", p)
	}
	if p, _ := Split(2, 100, 8); len(p.PerWorker) != 2 {
		t.Fatalf("more workers than connections: %+v", p)
	}
	if _, err := Split(0, 100, 1); err == nil {
		t.Fatal("zero conns accepted")
	}
	if _, err := Split(10, 0, 1); err == nil {
		t.Fatal("no room per worker accepted")
	}
}

func TestParseSourceAddrs(t *testing.T) {
	a, err := ParseSourceAddrs("127.0.0.2-127.0.0.50")
	if err != nil || len(a) != 49 || a[0].String() != "127.0.0.2" || a[48].String() != "127.0.0.50" {
		t.Fatalf("%v %v", len(a), err)
	}
	a, err = ParseSourceAddrs("127.0.0.2, 127.0.0.9-127.0.0.10")
	if err != nil || len(a) != 3 {
		t.Fatalf("%v %v", a, err)
	}
	for _, bad := range []string{"", "x", "127.0.0.5-127.0.0.2", "127.0.0.1-::1", "10.0.0.0-10.1.0.0", "127.0.0.1-y"} {
		if _, err := ParseSourceAddrs(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if r := LoopbackRange(60000, 28000, 0); len(r) != 3 || r[2].String() != "127.0.0.4" {
		t.Fatalf("%v", r)
	}
	if r := LoopbackRange(8000, 4000, 252); len(r) != 2 || r[0].String() != "127.0.0.254" || r[1].String() != "127.0.0.2" {
		t.Fatalf("wrap: %v", r)
	}
}

// TestMergeAcrossProcesses runs three real worker processes against one target and checks
// that what the parent merges is exactly what they did: every request answered once, the
// merged histogram's count equal to the sum, the connections split as planned.
func TestMergeAcrossProcesses(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	plan, _ := Split(30, 1000, 3)
	msgs := make(chan Msg, 64)
	var procs []*Proc
	for i, n := range plan.PerWorker {
		spec := Spec{Index: i, Conns: n, ConnOffset: plan.Offsets[i], Target: srv.Addr(), Protocol: "mmtp",
			API: "demo.sleep", Body: []byte("5"), Timeout: 5 * time.Second, Scenario: Steady, Rate: 100,
			Arrival: "poisson", Seed: uint64(i + 1), Duration: 1500 * time.Millisecond, PoolSize: 16}
		p, err := Start(testLauncher(), spec, msgs)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	ready, finals := 0, map[int]Msg{}
	timeout := time.After(60 * time.Second)
	for len(finals) < len(procs) {
		select {
		case m := <-msgs:
			switch m.Type {
			case MsgReady:
				if m.Snap.Open != plan.PerWorker[m.Worker] {
					t.Fatalf("worker %d ready with %d conns, want %d", m.Worker, m.Snap.Open, plan.PerWorker[m.Worker])
				}
				if ready++; ready == len(procs) {
					for _, p := range procs {
						p.Send(CmdGo)
					}
				}
			case MsgFinal:
				finals[m.Worker] = m
			case MsgFatal:
				t.Fatalf("worker %d: %s", m.Worker, m.Error)
			}
		case <-timeout:
			t.Fatal("workers did not finish")
		}
	}
	for _, p := range procs {
		p.CloseInput()
		if err := p.Err(); err != nil {
			t.Fatalf("worker %d exit: %v", p.Index, err)
		}
	}
	var list []Msg
	var sent uint64
	for _, m := range finals {
		list = append(list, m)
		sent += m.Snap.Sent
		if m.Hist.Count() != m.Snap.OK {
			t.Fatalf("worker %d: hist %d, ok %d", m.Worker, m.Hist.Count(), m.Snap.OK)
		}
	}
	mg := Merge(list)
	if mg.Snap.Open != 30 || mg.Snap.Sent != sent || mg.Snap.OK != sent || mg.Hist.Count() != sent || mg.Snap.Errors == nil {
		t.Fatalf("merged %+v count %d, sent %d", mg.Snap, mg.Hist.Count(), sent)
	}
	if got := uint64(srv.Requests.Load()); got != sent {
		t.Fatalf("server saw %d requests, workers sent %d", got, sent)
	}
	// Three Poisson streams of 100/s for 1.5 s: about 450, deterministic for these seeds.
	if sent < 350 || sent > 550 {
		t.Fatalf("sent %d, want about 450", sent)
	}
	if mg.Hist.Min() < 5e6 {
		t.Fatalf("min %d below the 5ms backend sleep", mg.Hist.Min())
	}
}

// TestStopGivesPartialFinal: closing a worker's stdin mid-run (the parent's Ctrl-C) still
// yields a final message with what was measured.
func TestStopGivesPartialFinal(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	msgs := make(chan Msg, 64)
	p, err := Start(testLauncher(), Spec{Conns: 2, Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo",
		Timeout: time.Second, Scenario: Steady, Rate: 200, Arrival: "constant", Duration: time.Hour}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for m := range msgs {
		if m.Type == MsgReady {
			p.Send(CmdGo)
			time.Sleep(300 * time.Millisecond)
			p.Send(CmdStop)
		}
		if m.Type == MsgFinal {
			if m.Snap.OK == 0 || m.Hist.Count() != m.Snap.OK {
				t.Fatalf("partial final: %+v", m.Snap)
			}
			break
		}
		if m.Type == MsgFatal {
			t.Fatal(m.Error)
		}
	}
	p.CloseInput()
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBadSpecIsFatal(t *testing.T) {
	msgs := make(chan Msg, 8)
	p, err := Start(testLauncher(), Spec{Conns: 1, Target: "127.0.0.1:1", Protocol: "mmtp", API: "x", Scenario: "bogus"}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	m := <-msgs
	if m.Type != MsgFatal || !strings.Contains(m.Error, "bogus") {
		t.Fatalf("%+v", m)
	}
	if p.Err() == nil {
		t.Fatal("bad spec exited 0")
	}
}
