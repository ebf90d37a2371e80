package report

import (
	"bytes"
	"strings"
	"testing"
)

// Rows over several gateway processes show how many, the idle baseline and the cost per
// connection over it, in the table and the HTML page, and each process's own figures.
func TestTableGatewayProcesses(t *testing.T) {
	r := &Result{Rows: []Row{{Name: "steady", Engine: "epoll", Conns: 3000, QPS: 200,
		Gateway: Gateway{Available: true, RSSBytes: 45441024, IdleRSSBytes: 36732928, PerConnBytes: 2902.7, CPUPercent: 7,
			Goroutines: 77, Conns: 3000, Procs: 3, Processes: []GatewayProc{
				{Admin: "127.0.0.1:1", PID: 11, RSSBytes: 14979072, Conns: 963},
				{Admin: "127.0.0.1:2", PID: 12, RSSBytes: 15310848, Conns: 1028},
				{Admin: "127.0.0.1:3", PID: 13, RSSBytes: 15151104, Conns: 1009}}}}}}
	var tbl bytes.Buffer
	if err := r.WriteTable(&tbl, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(tbl.String(), "\n")
	if !strings.Contains(lines[0], "| gw procs |") || !strings.Contains(lines[0], "| idle RSS |") || !strings.Contains(lines[0], "| RSS/conn |") {
		t.Fatalf("heading: %s", lines[0])
	}
	row := strings.Join(strings.Fields(lines[2]), " ")
	if !strings.Contains(row, "| 0 | 3 | 43.3 MiB | 35.0 MiB | 2903 B | 7% | 77 |") {
		t.Fatalf("row: %s", row)
	}
	if !strings.Contains(tbl.String(), "gateways (epoll steady): 3 processes on one listener, RSS 35.0 MiB idle -> 43.3 MiB summed; per process: conns 963 / 1028 / 1009") {
		t.Fatalf("no per-process line:\n%s", tbl.String())
	}
	var html bytes.Buffer
	if err := r.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "<th>gw procs</th>") || !strings.Contains(html.String(), "<td>3</td><td>43.3 MiB</td><td>35.0 MiB</td><td>2903 B</td>") {
		t.Fatalf("html table lacks the gateway columns")
	}
}
