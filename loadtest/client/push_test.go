package client

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/internal/testserver"
	"github.com/mgw-project/mgw/loadtest/openloop"
)

func pushServer(t *testing.T, faults testserver.PushFaults) *testserver.Push {
	t.Helper()
	s, err := testserver.NewPush("tok", faults)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// pushRun connects devices to srv, publishes rate/s for d through its admin API while
// crashed devices are dialled again, and waits until done says the figures are final.
func pushRun(t *testing.T, srv *testserver.Push, devices int, crashEvery uint64, rate float64, d time.Duration,
	done func(PushFigures) bool) (*Client, *hist.Recorder, PushFigures) {
	t.Helper()
	rec := hist.NewRecorder()
	c, err := New(Config{Target: srv.Addr(), Protocol: "mmtp", API: "demo.echo", AppID: "lt", Hello: true,
		Push: &PushConfig{AdminURL: srv.AdminURL(), Token: "tok", Topic: "run-1", CrashEvery: crashEvery}}, devices, engine(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Ramp(ctx, 0, nil)
	if got := c.Snapshot().Open; got != devices {
		t.Fatalf("open %d, want %d: %+v", got, devices, c.Snapshot())
	}
	redialed := make(chan struct{})
	go func() { defer close(redialed); c.KeepDialed(ctx, 20*time.Millisecond) }()
	sched, err := openloop.NewSchedule(openloop.Constant, rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	openloop.Run(ctx, sched, time.Now(), d, c.Publish)
	c.WaitPublished()
	deadline := time.Now().Add(10 * time.Second)
	f := c.PushFigures()
	for !done(f) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		f = c.PushFigures()
	}
	cancel()
	<-redialed
	return c, rec, c.PushFigures()
}

// TestPushAccountingWithCrashes: devices drop their connection on every 7th push before
// processing it; the gateway must deliver those again on the next connection, which
// resumes its log. Every publish is processed exactly once, nothing is lost, and every
// arrival is accounted for.
func TestPushAccountingWithCrashes(t *testing.T) {
	srv := pushServer(t, testserver.PushFaults{})
	// A push an earlier run left in a device's log: acknowledged, but not this run's.
	postPush(t, srv, `{"app":"lt","device":"lt-0","topic":"run-0","body":"1"}`)
	c, rec, f := pushRun(t, srv, 20, 7, 400, 500*time.Millisecond, func(f PushFigures) bool {
		return f.Published == 200 && f.Lost == 0 && f.Stale == 1 && srv.Unacked() == 0
	})
	if f.Published != 200 || f.Processed != 200 || f.Lost != 0 || f.Stale != 1 || f.Duplicates != 0 {
		t.Fatalf("figures %+v, want 200 published and processed, 1 stale, none lost or duplicate", f)
	}
	if f.Crashes == 0 || f.Redelivered != f.Crashes {
		t.Fatalf("crashes %d, redelivered %d: each crashed push must come again once", f.Crashes, f.Redelivered)
	}
	if f.Received != f.Processed+f.Stale+f.Duplicates+f.Crashes {
		t.Fatalf("received %d != processed+stale+duplicates+crashes %+v", f.Received, f)
	}
	if f.Acked != f.Processed+f.Stale+f.Duplicates {
		t.Fatalf("acked %d != processed+stale+duplicates %+v", f.Acked, f)
	}
	if srv.Resumed.Load() < int64(f.Crashes) {
		t.Fatalf("%d HELLOs resumed with push-epoch, want at least one per crash (%d)", srv.Resumed.Load(), f.Crashes)
	}
	if s := c.Snapshot(); s.Sent != 200 || s.OK != 200 || rec.Total().Count() != 200 {
		t.Fatalf("sent %d ok %d latencies %d, want 200 each", s.Sent, s.OK, rec.Total().Count())
	}
	if rec.Total().Max() > int64(10*time.Second) {
		t.Fatalf("delivery latency %v: not measured from the publish time", time.Duration(rec.Total().Max()))
	}
}

// TestPushDuplicatesDropped: a gateway that sends a device's whole log on every HELLO,
// processed pushes included: the device drops them (acknowledging them) and processes
// each (epoch, seq) once.
func TestPushDuplicatesDropped(t *testing.T) {
	srv := pushServer(t, testserver.PushFaults{ForgetAcks: true})
	c, _, f := pushRun(t, srv, 10, 5, 300, 400*time.Millisecond, func(f PushFigures) bool {
		return f.Published >= 100 && f.Lost == 0
	})
	if sent := c.Snapshot().Sent; f.Published != sent || f.Processed != sent || f.Lost != 0 {
		t.Fatalf("figures %+v, want all %d published and processed once", f, sent)
	}
	if f.Duplicates == 0 || f.Crashes == 0 {
		t.Fatalf("figures %+v: reconnects to a gateway that forgets acks must bring duplicates", f)
	}
}

// TestPushLostCounted: a gateway that accepts a publish and never delivers it.
func TestPushLostCounted(t *testing.T) {
	srv := pushServer(t, testserver.PushFaults{Drop: func(device string, seq uint64) bool { return device == "lt-3" && seq == 2 }})
	_, _, f := pushRun(t, srv, 5, 0, 200, 250*time.Millisecond, func(f PushFigures) bool {
		return f.Published == 50 && f.Processed == 49
	})
	if f.Published != 50 || f.Processed != 49 || f.Lost != 1 {
		t.Fatalf("figures %+v, want 50 published, 49 processed, 1 lost", f)
	}
}

func TestPushNeedsHello(t *testing.T) {
	_, err := New(Config{Target: "127.0.0.1:1", Protocol: "mmtp", API: "x", Push: &PushConfig{}}, 1, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "HELLO") {
		t.Fatalf("err = %v", err)
	}
}

func postPush(t *testing.T, srv *testserver.Push, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.AdminURL()+"/v1/push", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}
