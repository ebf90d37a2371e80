#!/usr/bin/env bash
# System calls per proxied request, for mgw (epoll engine, API path and plain proxy path)
# and nginx (one worker, upstream keep-alive), counted with `strace -c -f` attached to the
# proxy for a few seconds of `wrk -t1 -c64` (POST body "1024" -> 1 KiB answer from
# `mgw backend`). strace slows the proxy down, so the request rate here means nothing; the
# calls per request do. Needs strace, wrk, nginx (scripts/deps.sh installs wrk and nginx;
# `apt-get install strace`). Loopback only, free ports.
#
# Usage: scripts/syscalls-per-request.sh   (env: SECONDS_TRACED=3 MGW_BIN=path)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${SECONDS_TRACED:-3}
for bin in strace wrk /usr/sbin/nginx; do
  command -v "$bin" >/dev/null 2>&1 || { echo "syscalls-per-request: $bin not found" >&2; exit 1; }
done
work=$(mktemp -d /tmp/mgw-syscalls.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. scripts/lib/bench.sh
PROXY_CPU=${PROXY_CPU:-0}

mgw_and_backend

# trace NAME PID URL: wrk warms up, then strace counts while wrk runs again.
trace() {
  local name=$1 pid=$2 url=$3 reqs
  wrk -t1 -c64 -d1s -s "$work/post.lua" "$url" >/dev/null
  strace -c -f -p "$pid" -o "$work/$name.strace" 2>/dev/null &
  local spid=$!
  sleep 0.5
  wrk -t1 -c64 -d"${T}s" -s "$work/post.lua" "$url" >"$work/$name.wrk"
  sleep 0.2
  kill -INT "$spid"; wait "$spid" 2>/dev/null || true
  reqs=$(grep -oE '^ *[0-9]+ requests' "$work/$name.wrk" | grep -oE '[0-9]+')
  awk -v n="$name" -v r="$reqs" '
    /^-/ || /^%/ || NF < 5 { next }
    $NF == "total" { total = $4; next }
    { calls[$NF] = $4 }
    END {
      printf "%-12s %6d requests  %5.2f calls/request:", n, r, total / r
      for (s in calls) if (calls[s] / r >= 0.01) printf " %s %.2f", s, calls[s] / r
      printf "\n"
    }' "$work/$name.strace"
}

start_mgw epoll "$backend"
trace mgw-api "$mgw_pid" "http://$web/api/demo.size"
trace mgw-proxy "$mgw_pid" "http://$web/p/demo.size"

nport=$(( 20000 + RANDOM % 30000 ))
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<N
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
    upstream backend { server $backend; keepalive 128; }
    server {
        listen 127.0.0.1:$nport;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
N
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
pids+=($!)
sleep 0.5
worker=$(pgrep -P "${pids[-1]}" | head -1)
trace nginx "$worker" "http://127.0.0.1:$nport/api/demo.size"
