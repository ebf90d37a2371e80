package observe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSockstat(t *testing.T) {
	k, err := ParseSockstat([]byte("sockets: used 17\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 3\nUDP: inuse 0 mem 0\n"))
	if err != nil || k.TCPInuse != 5 || k.TCPAlloc != 7 || k.TCPMemBytes != 3*int64(os.Getpagesize()) {
		t.Fatalf("%+v %v", k, err)
	}
	if _, err := ParseSockstat([]byte("TCP: inuse x")); err == nil {
		t.Fatal("bad number accepted")
	}
	if _, err := ReadKernel(); err != nil {
		t.Fatalf("this box's /proc: %v", err)
	}
}

func TestParseSlabinfo(t *testing.T) {
	in := "slabinfo - version: 2.1\n# name <active_objs> ...\nTCP 100 120 2432 13 8 : tunables 0 0 0\nkmalloc-8 5 5 8 1 1\nfilp 1000 1100 256 16 1\n"
	m := ParseSlabinfo([]byte(in), SocketSlabs)
	if m["TCP"] != 243200 || m["filp"] != 256000 || len(m) != 2 {
		t.Fatalf("%v", m)
	}
	if (Kernel{Slab: m}).SlabTotal() != 499200 {
		t.Fatal("total")
	}
}

func TestLimits(t *testing.T) {
	in := "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n"
	if n, err := ParseLimitsNofile([]byte(in)); err != nil || n != 20000 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := ParseLimitsNofile([]byte("nothing")); err == nil {
		t.Fatal("missing line accepted")
	}
	n, err := ProcNofile(os.Getpid())
	if err != nil || n != OwnNofile() {
		t.Fatalf("own limits via /proc %d, getrlimit %d: %v", n, OwnNofile(), err)
	}
	if lo, hi := PortRange(); lo <= 0 || hi <= lo {
		t.Fatalf("port range %d-%d", lo, hi)
	}
	if rss, err := ProcRSS(os.Getpid()); err != nil || rss == 0 {
		t.Fatalf("rss %d %v", rss, err)
	}
}

func TestFetchStats(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo/v1/stats" { // a JSON server that is not mgw (mgw backend echoes)
			w.Write([]byte(`{"method":"GET","path":"/v1/stats"}`))
			return
		}
		if r.URL.Path != "/v1/stats" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"engine":"epoll","pid":123,"uptime_seconds":1.5,"connections":{"mobile":10,"web":0},"connections_total":10,"goroutines":25,"rss_bytes":123456,"heap_inuse_bytes":1,"cpu_seconds":1.25,"requests_total":100,"pool":{"running":1,"waiting":0,"cap":512},"open_files_limit":20000}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	st, err := FetchStats(context.Background(), srv.Client(), StatsURL(addr), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Engine != "epoll" || st.ConnectionsTotal != 10 || st.Connections["mobile"] != 10 || st.Pool.Cap != 512 || st.OpenFilesLimit != 20000 || st.CPUSeconds != 1.25 {
		t.Fatalf("%+v", st)
	}
	if _, err := FetchStats(context.Background(), srv.Client(), srv.URL+"/nope", time.Second); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	// Figures of zero from a server that is not mgw would read as a gateway at rest.
	if _, err := FetchStats(context.Background(), srv.Client(), srv.URL+"/echo/v1/stats", time.Second); err == nil || !strings.Contains(err.Error(), "not an mgw admin listener") {
		t.Fatalf("JSON that is not mgw's: %v", err)
	}
}

func TestStatsURL(t *testing.T) {
	for in, want := range map[string]string{"": "", "127.0.0.1:9901": "http://127.0.0.1:9901/v1/stats",
		"http://h:1/x/stats": "http://h:1/x/stats", "http://h:1": "http://h:1/v1/stats"} {
		if got := StatsURL(in); got != want {
			t.Errorf("StatsURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	line := []byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 10 18446744073709551615")
	if s, err := ParseStatCPU(line); err != nil || s != 3.0 {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := ParseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short line accepted")
	}
	if s, err := ProcCPU(os.Getpid()); err != nil || s < 0 {
		t.Fatalf("own cpu %v %v", s, err)
	}
}

// TestProcPSS: this process's PSS is read, and is at most its RSS (shared pages count in
// part).
func TestProcPSS(t *testing.T) {
	pss, err := ProcPSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	rss, err := ProcRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if pss == 0 || pss > rss {
		t.Fatalf("PSS %d, RSS %d", pss, rss)
	}
}
