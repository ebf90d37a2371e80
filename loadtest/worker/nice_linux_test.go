package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"golang.org/x/sys/unix"
)

// TestWorkerTakesItsNicenessAndProcs: a worker started with Spec.Nice runs every one of
// its threads at that niceness by the time it reports ready (a thread left out would take
// the gateway's CPU as before), and one already nicer keeps its own; with Spec.Procs it
// runs on that many Go processors, and its final report says so.
func TestWorkerTakesItsNicenessAndProcs(t *testing.T) {
	srv, err := testserver.NewMMTP(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	own, err := niceness()
	if err != nil {
		t.Fatal(err)
	}
	want := max(own, 7)
	msgs := make(chan Msg, 64)
	spec := Spec{Conns: 2, Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", Timeout: 5 * time.Second,
		Scenario: Steady, Rate: 10, Arrival: "constant", Duration: 200 * time.Millisecond, PoolSize: 4, Nice: 7, Procs: 1}
	p, err := Start(testLauncher(), spec, msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case m := <-msgs:
			if m.Type == MsgFatal {
				t.Fatalf("worker: %s", m.Error)
			}
			ready = m.Type == MsgReady
		case <-timeout:
			t.Fatal("worker not ready")
		}
	}
	nices, err := threadNices(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if len(nices) < 2 {
		t.Fatalf("worker has %d threads, want the runtime's several", len(nices))
	}
	for tid, n := range nices {
		if n != want {
			t.Errorf("thread %d at nice %d, want %d", tid, n, want)
		}
	}
	p.Send(CmdStop)
	for {
		select {
		case m := <-msgs:
			if m.Type != MsgFinal {
				continue
			}
			if got := m.Metrics[MetricHarnessProcs]; got != 1 {
				t.Errorf("final report: %s %v, want 1", MetricHarnessProcs, got)
			}
			p.CloseInput()
			return
		case <-timeout:
			t.Fatal("no final report after stop")
		}
	}
}

// threadNices reads the niceness of every thread of pid from /proc.
func threadNices(pid int) (map[int]int, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(dirs) == 0 {
		return nil, fmt.Errorf("threads of %d: %v", pid, err)
	}
	out := map[int]int{}
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // a thread that ended
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		tid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if out[tid], err = strconv.Atoi(f[16]); err != nil { // field 19, nice
			return nil, fmt.Errorf("%s: %w", d, err)
		}
	}
	return out, nil
}

// niceness is the niceness of this thread (the raw getpriority(2) gives 20 - nice).
func niceness() (int, error) {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return 0, err
	}
	return 20 - p, nil
}
