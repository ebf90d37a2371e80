#!/usr/bin/env bash
# Latency added by the gateway's hop, at a fixed request rate (issue 11, item 6): the same
# open-loop client (`mgw loadtest run`, latency from each request's intended send time)
#   (a) straight to the demo backend over HTTP/1.1: POST /api/demo.size, body "1024",
#   (b) through mgw's HTTP listener: the same POST /api/demo.size (the API call demo.size,
#       which mgw sends to the backend as POST /demo.size with Operation-Type),
#   (c) through mgw's MMTP listener: a REQUEST for demo.size with body "1024",
#   and, as the yardstick the hop is compared with, (d) the same POST through nginx (one
#   worker, upstream keep-alive, pinned like mgw; skipped when NGINX is not installed).
# Every answer is 1 KiB. "added" is the row's percentile minus the direct row's; for the
# MMTP row that compares with the backend over HTTP (the client has no MMTP backend to
# call directly), so it holds the protocol difference as well as the hop.
# mgw is pinned to PROXY_CPU (GOMAXPROCS=1), the backend and the client share LOAD_CPU,
# as in scripts/bench-http.sh. The goal of issue 11: at most 100 µs p50 and 1 ms p99 added.
#
# Usage: scripts/bench-latency.sh   (env: DURATION=10s RATE=1000 WARMUP=2s CONNS=16
#                                     ENGINES="epoll" PROXY_CPU=0 LOAD_CPU=1 MGW_BIN=path
#                                     KEEP=0 NGINX=/usr/sbin/nginx)
# ENGINES="epoll rwloop" measures both engines; KEEP=1 keeps the work directory (each
# run's loadtest JSON and output). Needs go, taskset, curl, jq. Listens on
# loopback only, on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-16}
ENGINES=${ENGINES:-epoll}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
MGW_BIN=${MGW_BIN:-}
NGINX=${NGINX:-/usr/sbin/nginx}

for bin in go taskset curl jq; do
  command -v "$bin" >/dev/null 2>&1 || { echo "bench-latency: $bin not found (run scripts/deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/mgw-bench-latency.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

load0=$(uptime | sed 's/.*load average: //')

. scripts/lib/bench.sh # the scripts run from the repository root (cd above)

echo "== building mgw" >&2
if [ -n "$MGW_BIN" ]; then cp "$MGW_BIN" "$work/mgw"; else CGO_ENABLED=0 go build -trimpath -o "$work/mgw" ./cmd/mgw; fi  # as make build (LEAN)

echo "== starting the demo backend on cpu $LOAD_CPU" >&2
taskset -c "$LOAD_CPU" "$work/mgw" backend --listen 127.0.0.1:0 >"$work/backend.out" 2>&1 &
pids+=($!)
backend=$(wait_line "$work/backend.out" '^listening (127\.0\.0\.1:[0-9]+)')
check=$(curl -sS -d 1024 "http://$backend/api/demo.size" | wc -c)
[ "$check" = 1024 ] || { echo "bench-latency: backend answered $check bytes, not 1024" >&2; exit 1; }

# Rows: name, p50 ns, p99 ns, qps, errors.
names=() p50s=() p99s=() qpss=() errss=()

# measure NAME PROTOCOL TARGET: one open-loop run at RATE, its latencies from the JSON.
measure() {
  local name=$1 proto=$2 target=$3 j=$work/$1.json
  echo "== $name: $proto $target, $RATE req/s for $DURATION after $WARMUP (load: $(uptime | sed 's/.*load average: //'))" >&2
  taskset -c "$LOAD_CPU" "$work/mgw" loadtest run -target "$target" -protocol "$proto" \
    -rate "$RATE" -conns "$CONNS" -ramp 0 -duration "$DURATION" -warmup "$WARMUP" \
    -api demo.size -body 1024 -json "$j" -html "" >"$work/$name.out" 2>&1 ||
    { echo "bench-latency: $name failed:" >&2; cat "$work/$name.out" >&2; exit 1; }
  names+=("$name")
  p50s+=("$(jq -r '.rows[0].latency.p50' "$j")")
  p99s+=("$(jq -r '.rows[0].latency.p99' "$j")")
  qpss+=("$(jq -r '.rows[0].qps | floor' "$j")")
  errss+=("$(jq -r '[.rows[0].errors // {} | to_entries[] | select(.value > 0) | "\(.key)=\(.value)"] | join(",") | if . == "" then "0" else . end' "$j")")
}

measure direct-http http1 "$backend"

if [ -x "$NGINX" ]; then
  start_nginx "$backend"
  measure nginx-http http1 "127.0.0.1:$nport"
  kill "$nginx_pid"
else
  echo "bench-latency: no nginx at $NGINX (scripts/deps.sh installs it): no nginx row" >&2
fi

for engine in $ENGINES; do
  start_mgw "$engine" "$backend"
  body=$(curl -sS -d 1024 "http://$web/api/demo.size" | wc -c)
  [ "$body" = 1024 ] || { echo "bench-latency: mgw answered $body bytes, not 1024" >&2; exit 1; }
  measure "mgw-$engine-http" http1 "$web"
  measure "mgw-$engine-mmtp" mmtp "$mobile"
  kill "$mgw_pid"
done

# dur NS [SIGN]: nanoseconds as 87us, 1.25ms or 1.02s (with a sign when SIGN is +).
dur() {
  awk -v n="$1" -v sign="${2:-}" 'BEGIN {
    s = ""; if (sign == "+") s = (n < 0) ? "-" : "+"; if (n < 0) n = -n
    if (n < 1e6) printf "%s%.0fus", s, n / 1e3
    else if (n < 1e9) printf "%s%.2fms", s, n / 1e6
    else printf "%s%.2fs", s, n / 1e9 }'
}

echo
echo "mgw loadtest run: open loop, $RATE req/s constant, $CONNS conns, $WARMUP warm-up + $DURATION measured;"
echo "demo.size body \"1024\" -> 1 KiB answer; mgw on cpu $PROXY_CPU (GOMAXPROCS=1), client+backend on cpu $LOAD_CPU"
echo "machine: $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $(uname -r); mgw ${MGW_BIN:-$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty)}"
echo "load average at the start: $load0; at the end: $(uptime | sed 's/.*load average: //')"
printf '%-18s %9s %9s %10s %10s %7s  %s\n' path p50 p99 "added p50" "added p99" "req/s" errors
for i in "${!names[@]}"; do
  a50=- a99=-
  if [ "$i" -gt 0 ]; then
    a50=$(dur $((p50s[i] - p50s[0])) +)
    a99=$(dur $((p99s[i] - p99s[0])) +)
  fi
  printf '%-18s %9s %9s %10s %10s %7s  %s\n' "${names[$i]}" "$(dur "${p50s[$i]}")" "$(dur "${p99s[$i]}")" "$a50" "$a99" "${qpss[$i]}" "${errss[$i]}"
done
echo "(added: minus direct-http; the *-mmtp rows compare MMTP through mgw with HTTP straight to the backend."
echo " Goal of issue 11: added p50 <= 100us, added p99 <= 1000us.)"
exit 0
