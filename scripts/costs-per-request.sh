#!/usr/bin/env bash
# Allocations and clock reads per proxied request through mgw (epoll engine, API path and
# plain proxy path), for `wrk -t1 -c64` POST body "1024" -> 1 KiB answer from `mgw backend`.
# These are counts, not timings: on a shared box a change that saves 50 ns a request is
# lost in the noise of any timed run, but shows here exactly.
#   allocations: the delta of go_memstats_mallocs_total (mgw's /metrics) over the run,
#                divided by the requests wrk made (the scrape itself adds a few hundred);
#   clock reads: calls of time.now and runtime.nanotime1, counted with uprobes
#                (`perf probe`, needs root and perf; skipped otherwise).
# Loopback only, free ports.
#
# Usage: scripts/costs-per-request.sh   (env: SECONDS_RUN=3 MGW_BIN=path PROXY_CPU=0)
set -euo pipefail
cd "$(dirname "$0")/.."
T=${SECONDS_RUN:-3}
command -v wrk >/dev/null 2>&1 || { echo "costs-per-request: wrk not found (scripts/deps.sh)" >&2; exit 1; }
work=$(mktemp -d /tmp/mgw-costs.XXXXXX)
pids=()
probes=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$probes" = 0 ] || perf probe -q -d 'probe_mgw:*' 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. scripts/lib/bench.sh
PROXY_CPU=${PROXY_CPU:-0}

mgw_and_backend
start_mgw epoll "$backend"

if command -v perf >/dev/null 2>&1 && [ "$(id -u)" = 0 ] &&
  perf probe -q -x "$work/mgw" -a 'mgwnow=time.now' -a 'mgwnano=runtime.nanotime1' 2>/dev/null; then
  probes=1
else
  echo "costs-per-request: no uprobes (needs root and perf): clock reads not counted" >&2
fi

mallocs() { curl -sS "http://$admin/metrics" | awk '/^go_memstats_mallocs_total / {print $2}'; }

# count NAME URL: one warm-up, then one counted wrk run.
count() {
  local name=$1 url=$2 m0 m1 reqs spid=""
  wrk -t1 -c64 -d1s -s "$work/post.lua" "$url" >/dev/null
  if [ "$probes" = 1 ]; then
    perf stat -x, -e 'probe_mgw:mgwnow,probe_mgw:mgwnano' -p "$mgw_pid" -o "$work/$name.perf" -- sleep 600 2>/dev/null &
    spid=$!
    sleep 0.3
  fi
  m0=$(mallocs)
  wrk -t1 -c64 -d"${T}s" -s "$work/post.lua" "$url" >"$work/$name.wrk"
  m1=$(mallocs)
  # perf stat ends with its workload; a background job ignores SIGINT in a script.
  if [ -n "$spid" ]; then pkill -P "$spid" sleep || true; wait "$spid" 2>/dev/null || true; fi
  reqs=$(grep -oE '^ *[0-9]+ requests' "$work/$name.wrk" | grep -oE '[0-9]+')
  printf '%-10s %7d requests  allocations %6.2f' "$name" "$reqs" "$(awk -v a="$m0" -v b="$m1" -v r="$reqs" 'BEGIN {print (b - a) / r}')"
  if [ -n "$spid" ]; then
    awk -F, -v r="$reqs" '$3 ~ /mgwnow/ {n = $1} $3 ~ /mgwnano/ {m = $1}
      END {printf "  time.now %5.2f  nanotime %5.2f", n / r, m / r}' "$work/$name.perf"
  fi
  printf '  (per request)\n'
}

count mgw-api "http://$web/api/demo.size"
count mgw-proxy "http://$web/p/demo.size"
