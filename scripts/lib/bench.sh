# Shared by scripts/bench-http.sh and scripts/bench-latency.sh (sourced, not run). Uses the
# caller's globals: work (a scratch directory), PROXY_CPU, and the array pids (what
# cleanup kills).

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
