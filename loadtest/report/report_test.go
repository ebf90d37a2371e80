package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mgw-project/mgw/loadtest/hist"
	"github.com/mgw-project/mgw/loadtest/project"
)

func sampleResult() *Result {
	h := hist.New()
	h.RecordN(2e6, 98)
	h.RecordN(9e6, 1)
	h.Record(40e6)
	var pts []project.Point
	for x := 1000.0; x <= 4000; x += 1000 {
		pts = append(pts, project.Point{X: x, Y: 30e6 + 700*x})
	}
	fit, _ := project.LeastSquares(pts)
	proj := fit.To(100000)
	row := Row{Name: "steady", Engine: "epoll", Conns: 4000, PeakConns: 4000, Seconds: 10, TargetQPS: 1000,
		Sent: 10000, OK: 9990, QPS: 999, Latency: Summarise(h), Hist: h,
		Errors:    map[string]uint64{"timeout": 3, "status_503": 7},
		Gateway:   Gateway{Available: true, RSSBytes: 33e6, CPUPercent: 12.6, Goroutines: 31, Conns: 4000},
		Kernel:    Kernel{TCPInuse: 8000, TCPMemBytes: 4 << 20, SlabBytes: 30 << 20, SlabReadable: true},
		MemPoints: pts, Projection: &proj, Notes: []string{"<script>alert(1)</script>"}}
	for i := 0; i < 5; i++ {
		row.Timeline = append(row.Timeline, Sample{T: float64(i), Conns: 1000 * i, QPS: 1000, P50: 2e6, P99: 9e6, P999: 40e6,
			GatewayRSS: uint64(30e6 + 700*1000*i), GatewayCon: int64(1000 * i)})
	}
	idle := Row{Name: "idle", Engine: "rwloop", Conns: 4000, Errors: map[string]uint64{}}
	return &Result{Version: FormatVersion, Started: time.Unix(1e9, 0), Finished: time.Unix(1e9+20, 0),
		Command: "mgw loadtest run -conns 4000", Params: Params{Target: "127.0.0.1:9000", Protocol: "mmtp", Conns: 100000},
		Limits: Limits{ClientNofile: 20000, Notes: []string{"client open-file limit 20000 < 100000: running 4000"}},
		Rows:   []Row{row, idle}, Partial: true, Reason: "interrupted"}
}

func TestTableHasRowsReferencesAndProjection(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResult().WriteTable(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| model", "epoll steady", "|   4000 |", "999", "2.00ms", "9.01ms", "40.00ms",
		"status_503=7 timeout=3", "13%", "31",
		"reference: goroutine per connection", "200028", "3.30 GB", "60%",
		"reference: raw epoll + goroutine pool", "2.50 GB", "18%",
		"PROJECTION", "700 B/conn", "kernel (epoll steady)", "limit: client open-file limit",
		"PARTIAL RESULT: interrupted", "rwloop idle", "epoll steady PROJECTED", "~95.4 MiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Every table line has the same number of cells.
	var cells int
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "|") {
			n := strings.Count(l, "|")
			if cells == 0 {
				cells = n
			} else if n != cells {
				t.Errorf("ragged table line %q", l)
			}
		}
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResult().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// Anything that would make a browser fetch something.
	bad := regexp.MustCompile(`(?i)(src\s*=|href\s*=|url\(|@import|<link|<script|<iframe|<img|https?://)`)
	if m := bad.FindString(out); m != "" {
		t.Fatalf("report references an external resource: %q", m)
	}
	for _, want := range []string{"<svg", "polyline", "latency percentiles per second", "Latency distribution",
		"Gateway RSS over time", "steady: connections", "RSS against connections", "fit: 700 B/conn", "reference: raw epoll",
		"Partial result", "&lt;script&gt;"} {
		if !strings.Contains(out, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if strings.Count(out, "<svg") != strings.Count(out, "</svg>") {
		t.Error("unbalanced svg")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var g Result
	if err := json.Unmarshal(b.Bytes(), &g); err != nil {
		t.Fatal(err)
	}
	if g.Rows[0].Hist.Percentile(99) != r.Rows[0].Hist.Percentile(99) || g.Rows[0].Projection.Slope != r.Rows[0].Projection.Slope {
		t.Fatal("round trip lost the histogram or projection")
	}
}

func TestEmptyResultRenders(t *testing.T) {
	r := &Result{}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil || !strings.Contains(b.String(), "no data") {
		t.Fatalf("empty html: %v", err)
	}
	b.Reset()
	if err := r.WriteTable(&b, false); err != nil || !strings.Contains(b.String(), "| model") {
		t.Fatalf("empty table: %v %q", err, b.String())
	}
}

func TestFmtDur(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 850e3: "850µs", 12.3e6: "12.30ms", 1.2e9: "1.20s"} {
		if got := FmtDur(in); got != want {
			t.Errorf("FmtDur(%d) = %q, want %q", in, got, want)
		}
	}
}
