#!/usr/bin/env bash
# Installs what the tests and benchmarks run against for real: curl and wrk as clients,
# nginx as a third-party upstream and reverse proxy to compare with, jq for benchmark JSON,
# prometheus (promtool and the server) and chromium for deploy/'s checks of the dashboard,
# alert rules and HTML load report, etcd and redis-server for the fleet's tests (each test
# starts its own on free loopback ports). Go modules come through `go` itself. Safe to run again: it installs only what is missing.
set -euo pipefail

need=()
command -v curl  >/dev/null 2>&1 || need+=(curl)
command -v wrk   >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v jq    >/dev/null 2>&1 || need+=(jq) # bench-latency.sh reads loadtest's JSON
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "deps: installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts a system nginx on port 80; tests run their own on free ports.
$sudo systemctl disable --now nginx >/dev/null 2>&1 || $sudo service nginx stop >/dev/null 2>&1 || true
# Likewise prometheus on 9090; deploy's test runs its own on a free port.
$sudo systemctl disable --now prometheus >/dev/null 2>&1 || $sudo service prometheus stop >/dev/null 2>&1 || true
# Likewise etcd on 2379/2380 and redis on 6379; the fleet's tests run their own.
$sudo systemctl disable --now etcd >/dev/null 2>&1 || $sudo service etcd stop >/dev/null 2>&1 || true
$sudo systemctl disable --now redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
