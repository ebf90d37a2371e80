#!/usr/bin/env bash
# HTTP proxy throughput, in one run, on one machine: wrk with a 1 KiB response
#   (a) straight to the demo backend (`mgw backend`),
#   (b) through nginx as a reverse proxy (one worker, upstream keep-alive),
#   (c) through Go's net/http/httputil.ReverseProxy (the floor a design must beat),
#   (d) through mgw's HTTP listener, engine epoll: an API call (POST /api/demo.size,
#       buffered, upstream.Call) and a plain proxied path (POST /p/demo.size, streamed,
#       upstream.Forward),
#   (e) the same through mgw with engine rwloop,
#   (f) mgw's MMTP listener on each engine (mgw-epoll-mmtp, mgw-rwloop-mmtp): the API call
#       demo.size with body "1024" from `mgw loadtest closed`, MMTP_CONNS connections x
#       MMTP_STREAMS streams, each stream sending its next call as soon as the previous
#       answer arrives (wrk's closed loop, with many calls in flight per connection).
# Every proxy is pinned to one core (PROXY_CPU, default 0; mgw with GOMAXPROCS=1); the
# backend and wrk share the other (LOAD_CPU, default 1). Because wrk and the backend
# compete for their core, raw req/s is bounded by them; "req/s per proxy core" divides
# the requests by the CPU seconds the proxy process itself used (utime+stime from
# /proc/PID/stat over the measured run), which is the proxy's own cost.
#
# Usage: scripts/bench-http.sh            (env: DURATION=10s CONNS=64 WARMUP=2s ROUNDS=1
#                                           PROXY_CPU=0 LOAD_CPU=1 PROFILE=0 ONLY=regex
#                                           MMTP_CONNS=8 MMTP_STREAMS=16)
# ROUNDS=N measures every target N times, round after round with every server up, and
# reports each target's median round (by req/s/core): on a shared machine whose speed
# drifts over minutes, targets measured side by side in each round compare fairly,
# where one pass measures the first and the last target minutes apart.
# MGW_BIN=path measures that mgw binary instead of building one (before/after runs).
# PROFILE=1 also saves a 5 s CPU profile of mgw (epoll, API path) under the work
# directory, printed at the end. Needs: go, wrk, taskset, curl, /usr/sbin/nginx
# (scripts/deps.sh installs them). Listens on loopback only, on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PROFILE=${PROFILE:-0}
ONLY=${ONLY:-.}
NGINX=${NGINX:-/usr/sbin/nginx}
MGW_BIN=${MGW_BIN:-}
MMTP_CONNS=${MMTP_CONNS:-8}
MMTP_STREAMS=${MMTP_STREAMS:-16}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench-http: ROUNDS=$ROUNDS is not a positive number" >&2; exit 2; }
round=1

for bin in go wrk taskset curl "$NGINX"; do
  command -v "$bin" >/dev/null 2>&1 || { echo "bench-http: $bin not found (run scripts/deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/mgw-bench-http.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$PROFILE" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

tick=$(getconf CLK_TCK)
load0=$(uptime | sed 's/.*load average: //')

# cpu_ticks PID: utime+stime of a process so far, in clock ticks.
cpu_ticks() {
  # Field 2 (comm) is in parentheses and may hold spaces: cut after the last ')'.
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  set -- $s
  echo $(( ${12} + ${13} )) # fields 14 and 15 of the whole line
}

. scripts/lib/bench.sh # the scripts run from the repository root (cd above)

echo "== building mgw and the ReverseProxy baseline" >&2
if [ -n "$MGW_BIN" ]; then cp "$MGW_BIN" "$work/mgw"; else CGO_ENABLED=0 go build -trimpath -o "$work/mgw" ./cmd/mgw; fi  # as make build (LEAN)
mkdir -p "$work/rp"
cat >"$work/rp/main.go" <<'EOF'
// The comparison floor: net/http/httputil.ReverseProxy with a keep-alive transport.
package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	u, _ := url.Parse("http://" + os.Args[2])
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	panic(http.ListenAndServe(os.Args[1], rp))
}
EOF
(cd "$work/rp" && GO111MODULE=off go build -o "$work/reverseproxy" main.go)

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "1024"
wrk.headers["Content-Type"] = "text/plain"
EOF

echo "== starting the demo backend on cpu $LOAD_CPU" >&2
taskset -c "$LOAD_CPU" "$work/mgw" backend --listen 127.0.0.1:0 >"$work/backend.out" 2>&1 &
pids+=($!)
backend_pid=$!
backend=$(wait_line "$work/backend.out" '^listening (127\.0\.0\.1:[0-9]+)')
check=$(curl -sS -d 1024 "http://$backend/api/demo.size" | wc -c)
[ "$check" = 1024 ] || { echo "bench-http: backend answered $check bytes, not 1024" >&2; exit 1; }

mkdir -p "$work/rows"
order=() # target names, in the order first measured
# add_row NAME PER ROW: keeps round $round's table row of target NAME, whose req/s/core is PER.
add_row() {
  [ -e "$work/rows/$1" ] || order+=("$1")
  printf '%s\t%s\n' "$2" "$3" >>"$work/rows/$1"
}

# measure NAME URL PID: warm up, then a measured wrk run; PID is the process whose CPU
# time counts as the proxy's.
measure() {
  local name=$1 url=$2 pid=$3 out t0 t1 rps p50 p99 total errs cpu per
  [[ $name =~ $ONLY ]] || return 0
  local body
  body=$(curl -sS -d 1024 "$url" | wc -c)
  [ "$body" = 1024 ] || { echo "bench-http: $name answered $body bytes, not 1024" >&2; exit 1; }
  echo "== $name: $url (load: uptime $(uptime | sed 's/.*load average: //'))" >&2
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" -s "$work/post.lua" "$url" >/dev/null
  t0=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$work/post.lua" "$url")
  t1=$(cpu_ticks "$pid")
  echo "$out" >"$work/wrk-$name.txt"
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors:/ {print "sock:" $0}' <<<"$out" | tr '\n' ' ')
  cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$tick" 'BEGIN {printf "%.2f", (b - a) / hz}')
  per=$(awk -v n="$total" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", n / c; else print "-"}')
  add_row "$name" "$per" "$(printf '%-22s %10s %8s %14s %9s %9s  %s' "$name" "$rps" "$cpu" "$per" "$p50" "$p99" "$errs")"
}

# measure_mmtp NAME ADDR PID: the closed-loop MMTP client, warm-up and measured window in
# one run; it reads PID's CPU time over the window itself (same /proc/PID/stat fields).
measure_mmtp() {
  local name=$1 addr=$2 pid=$3 out res
  [[ $name =~ $ONLY ]] || return 0
  echo "== $name: mmtp $addr, $MMTP_CONNS conns x $MMTP_STREAMS streams (load: uptime $(uptime | sed 's/.*load average: //'))" >&2
  out=$(taskset -c "$LOAD_CPU" "$work/mgw" loadtest closed -target "$addr" -protocol mmtp \
    -conns "$MMTP_CONNS" -streams "$MMTP_STREAMS" -duration "$DURATION" -warmup "$WARMUP" \
    -api demo.size -body 1024 -pid "$pid") || { echo "bench-http: $name failed: $out" >&2; exit 1; }
  echo "$out" >"$work/closed-$name.txt"
  res=$(grep '^result ' <<<"$out")
  field() { sed -nE "s/.* $1=([^ ]*).*/\1/p" <<<"$res"; }
  local errs
  errs=$(field errors)
  [ "$errs" = 0 ] && errs=""
  add_row "$name" "$(field per_cpu_s)" "$(printf '%-22s %10s %8s %14s %9s %9s  %s' "$name" "$(field rate)" "$(field cpu_s)" "$(field per_cpu_s)" "$(field p50)" "$(field p99)" "$errs")"
}

# Every server starts first and stays up (idle ones cost nothing), so that each round
# measures the targets side by side.
# (b) nginx, one worker, keep-alive to the backend.
[[ ! nginx =~ $ONLY ]] || start_nginx "$backend"
# (c) httputil.ReverseProxy.
if [[ reverseproxy =~ $ONLY ]]; then
  rport=$(free_port)
  GOMAXPROCS=1 taskset -c "$PROXY_CPU" "$work/reverseproxy" "127.0.0.1:$rport" "$backend" 2>"$work/reverseproxy.err" &
  pids+=($!)
  rp_pid=$!
  wait_port "$rport"
fi
# (d, e) mgw on each engine: the API path, the plain reverse-proxy path, and MMTP.
declare -A eng_pid eng_web eng_mobile eng_admin
for engine in epoll rwloop; do
  [[ "mgw-$engine-api mgw-$engine-proxy mgw-$engine-mmtp" =~ $ONLY ]] || continue
  start_mgw "$engine" "$backend"
  eng_pid[$engine]=$mgw_pid eng_web[$engine]=$web eng_mobile[$engine]=$mobile eng_admin[$engine]=$admin
done

for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" = 1 ] || echo "== round $round of $ROUNDS" >&2
  # (a) the backend straight; its own CPU time is "the proxy's" here.
  measure direct "http://$backend/api/demo.size" "$backend_pid"
  [ -z "${nginx_pid:-}" ] || measure nginx "http://127.0.0.1:$nport/api/demo.size" "$nginx_pid"
  [ -z "${rp_pid:-}" ] || measure reverseproxy "http://127.0.0.1:$rport/api/demo.size" "$rp_pid"
  for engine in epoll rwloop; do
    [ -n "${eng_pid[$engine]:-}" ] || continue
    admin=${eng_admin[$engine]}
    if [ "$PROFILE" = 1 ] && [ "$engine" = epoll ] && [ "$round" = 1 ] && [[ mgw-epoll-api =~ $ONLY ]]; then
      (sleep 3; curl -sS -o "$work/mgw-epoll-api.pprof" "http://$admin/debug/pprof/profile?seconds=5") &
    fi
    measure "mgw-$engine-api" "http://${eng_web[$engine]}/api/demo.size" "${eng_pid[$engine]}"
    if [ "$PROFILE" = 1 ] && [ "$engine" = epoll ] && [ "$round" = 1 ] && [[ mgw-epoll-proxy =~ $ONLY ]]; then
      (sleep 3; curl -sS -o "$work/mgw-epoll-proxy.pprof" "http://$admin/debug/pprof/profile?seconds=5") &
    fi
    measure "mgw-$engine-proxy" "http://${eng_web[$engine]}/p/demo.size" "${eng_pid[$engine]}"
    measure_mmtp "mgw-$engine-mmtp" "${eng_mobile[$engine]}" "${eng_pid[$engine]}"
  done
done

echo
echo "wrk -t1 -c$CONNS -d$DURATION, POST body \"1024\" -> 1 KiB answer; proxy on cpu $PROXY_CPU, wrk+backend on cpu $LOAD_CPU"
echo "*-mmtp: mgw loadtest closed, $MMTP_CONNS conns x $MMTP_STREAMS streams, MMTP demo.size body \"1024\" -> 1 KiB answer, $WARMUP warm-up + $DURATION window, on cpu $LOAD_CPU"
echo "machine: $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); $(uname -r); mgw ${MGW_BIN:-$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty)}"
echo "load average at the start: $load0; at the end: $(uptime | sed 's/.*load average: //')"
[ "$ROUNDS" = 1 ] || echo "each row: the target's median of $ROUNDS rounds by req/s/core; every round's req/s/core in brackets"
printf '%-22s %10s %8s %14s %9s %9s  %s\n' target "req/s" "cpu s" "req/s/core" p50 p99 errors
for name in "${order[@]}"; do
  # The median round's row (the lower middle one for an even count).
  n=$(wc -l <"$work/rows/$name")
  row=$(sort -t$'\t' -k1,1n "$work/rows/$name" | sed -n "$(( (n + 1) / 2 ))p" | cut -f2-)
  if [ "$ROUNDS" = 1 ]; then
    echo "$row"
  else
    echo "$row  [$(cut -f1 "$work/rows/$name" | paste -sd' ')]"
  fi
done
echo "(req/s/core: requests / CPU seconds of the proxy process; for direct, of the backend; for *-mmtp, API calls over MMTP / CPU seconds of mgw)"
[ "$PROFILE" = 1 ] && echo "profiles and wrk output: $work"
exit 0
