# Shared by scripts/bench-http.sh and scripts/bench-latency.sh (sourced, not run). Uses the
# caller's globals: work (a scratch directory), PROXY_CPU, NGINX (start_nginx), and the
# array pids (what cleanup kills).

# wait_line FILE REGEX: waits for a line in FILE matching REGEX; prints its first group.
wait_line() {
  local file=$1 re=$2 i
  for i in $(seq 1 300); do
    if [ -s "$file" ] && grep -Eq "$re" "$file"; then
      sed -nE "s/^.*${re#^}.*\$/\1/p" "$file" | head -1
      return
    fi
    sleep 0.1
  done
  echo "$(basename "$0"): no line matching '$re' in $file:" >&2
  cat "$file" >&2
  exit 1
}

# start_mgw ENGINE BACKEND: mgw on ENGINE, pinned to PROXY_CPU with GOMAXPROCS=1, routing
# the API demo.* and the path /p/ to BACKEND (host:port), with an HTTP listener (web) and
# an MMTP one (mobile) on free loopback ports. Sets mgw_pid, web, mobile and admin.
start_mgw() {
  local engine=$1 backend=$2
  cat >"$work/mgw-$engine.yaml" <<YAML
engine: $engine
log: {level: warn}
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: web, listen: 127.0.0.1:0, protocol: http1}
  - {name: mobile, listen: 127.0.0.1:0, protocol: mmtp}
clusters:
  - {name: backend, hosts: ["$backend"], timeout: 5s}
routes:
  - {api: "demo.*", split: {backend: 100}}
  - {path: /p/, split: {backend: 100}}
YAML
  GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$work/mgw" serve -c "$work/mgw-$engine.yaml" >"$work/mgw-$engine.out" 2>&1 &
  pids+=($!)
  mgw_pid=$!
  web=$(wait_line "$work/mgw-$engine.out" 'web +http1 (127\.0\.0\.1:[0-9]+)')
  mobile=$(wait_line "$work/mgw-$engine.out" 'mobile +mmtp +(127\.0\.0\.1:[0-9]+)')
  admin=$(wait_line "$work/mgw-$engine.out" 'admin +(127\.0\.0\.1:[0-9]+)')
}

# free_port: a loopback port nobody listens on (for nginx and the Go proxy, which
# cannot report a port they chose themselves).
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

wait_port() {
  local i
  for i in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# start_nginx BACKEND: nginx (NGINX, one worker, master off) pinned to PROXY_CPU as a
# reverse proxy to BACKEND (host:port) with upstream keep-alive, on a free loopback port.
# Sets nginx_pid and nport.
start_nginx() {
  local backend=$1
  nport=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # nginx closes a client connection after 1000 requests by default; mgw does not, and
    # the open-loop client of bench-latency.sh counts such a close as errors.
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream backend {
        server $backend;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
  taskset -c "$PROXY_CPU" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
  pids+=($!)
  nginx_pid=$!
  wait_port "$nport"
}

# mgw_and_backend: $work/mgw (MGW_BIN, else built as make build does), the demo backend
# on a free loopback port (sets backend) and $work/post.lua (POST body "1024"), for the
# per-request counting scripts.
mgw_and_backend() {
  if [ -n "${MGW_BIN:-}" ]; then cp "$MGW_BIN" "$work/mgw"; else CGO_ENABLED=0 go build -trimpath -o "$work/mgw" ./cmd/mgw; fi  # as make build (LEAN)
  "$work/mgw" backend --listen 127.0.0.1:0 >"$work/backend.out" 2>&1 &
  pids+=($!)
  backend=$(wait_line "$work/backend.out" '^listening (127\.0\.0\.1:[0-9]+)')
  printf 'wrk.method = "POST"\nwrk.body = "1024"\n' >"$work/post.lua"
}
