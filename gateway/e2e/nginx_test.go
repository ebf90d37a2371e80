package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxBin is Debian's nginx-light binary, which scripts/deps.sh (run by .ci/run)
// installs. A missing nginx fails the test: CI has it, so a skip would only hide a
// broken setup.
const nginxBin = "/usr/sbin/nginx"

// nginxConf is an nginx that needs no root and touches nothing outside its prefix
// directory: one process (no master), its pid, logs and temp files in the prefix.
// %[1]s is the prefix, %[2]d the port, %[3]s extra server directives.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        root %[1]s/www;
%[3]s
    }
}
`

// startNginx runs nginx on a free loopback port with the given server directives and
// a document root holding www/static/page.txt; it returns the address.
func startNginx(t *testing.T, server string) string {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Fatalf("nginx is required for this test (apt-get install nginx-light, as scripts/deps.sh does): %v", err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www", "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "static", "page.txt"), []byte(staticPage), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, server)), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: the error log before the config is read (the default path needs root).
	cmd := exec.Command(nginxBin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT) // graceful; SIGKILL if it dawdles
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited (%v) before listening:\n%s%s", err, out.String(), log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s after 15s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const staticPage = "a static page served by nginx from a file\n"

// TestNginxUpstream puts a real third-party server behind mgw: plain proxied GETs (a
// `return` and a static file) and an API call mapped to POST <path_prefix>/<op>.
func TestNginxUpstream(t *testing.T) {
	naddr := startNginx(t, `
        location = /hello { return 200 "hello from nginx, host $host, xff $http_x_forwarded_for\n"; }
        location /static/ { }
        location /ops/ { return 200 "nginx saw $request_method $request_uri op=$http_operation_type body=$content_length\n"; }
`)
	g := serve(t, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
clusters:
  - {name: nginx, hosts: [%q], path_prefix: /ops, timeout: 5s}
routes:
  - {api: "shop.*", split: {nginx: 100}}
  - {path: /, split: {nginx: 100}}
`, naddr))
	web := "http://" + g.addrs["web"]

	out, err := curl(t, "-H", "Host: shop.example", web+"/hello")
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello from nginx, host shop.example, xff 127.0.0.1\n"; out != want {
		t.Errorf("GET /hello through mgw: %q, want %q (Host kept, X-Forwarded-For added)", out, want)
	}

	out, err = curl(t, web+"/static/page.txt")
	if err != nil || out != staticPage {
		t.Errorf("GET /static/page.txt through mgw: %q, %v; want the file %q", out, err, staticPage)
	}
	// nginx's own 404 page comes back as nginx's answer, not a gateway error.
	out, err = curl(t, "-o", "/dev/null", "-w", "%{http_code}", web+"/static/missing.txt")
	if err != nil || out != "404" {
		t.Errorf("GET of a missing file: status %q, %v; want nginx's 404", out, err)
	}

	out, err = curl(t, "-d", "paid", web+"/api/shop.order.pay")
	if err != nil {
		t.Fatal(err)
	}
	if want := "nginx saw POST /ops/shop.order.pay op=shop.order.pay body=4\n"; out != want {
		t.Errorf("API call through mgw: %q, want %q", out, want)
	}
	// Many keep-alive requests on one curl connection: mgw's pooled connection to nginx
	// is reused, and every answer still matches its request.
	args := []string{"-d", "x"} // one option group: every URL is POSTed "x"
	for i := range 20 {
		args = append(args, fmt.Sprintf("%s/api/shop.item%d", web, i))
	}
	out, err = curl(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if want := fmt.Sprintf("nginx saw POST /ops/shop.item%d op=shop.item%d body=1\n", i, i); !strings.Contains(out, want) {
			t.Errorf("keep-alive call %d: %q missing from\n%s", i, want, out)
		}
	}
}
