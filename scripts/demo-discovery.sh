#!/usr/bin/env bash
# Bootstraps a three-member cetera cluster through the discovery service on
# this machine: starts cetera-discovery, asks it for a token with
# `ceteractl discovery new`, starts three members with only
# `--discovery=<url>` (no --initial-cluster), shows the cluster, and leaves
# it running until Ctrl-C.
#
# Usage: scripts/demo-discovery.sh [--release] [--check] [BASE_PORT]
#   --release   build and run release binaries (default: debug)
#   --check     exit (0 on success) once the cluster is shown, instead of
#               waiting for Ctrl-C
#   BASE_PORT (default 32579): member i serves clients on BASE_PORT+10*i and
#   peers on BASE_PORT+10*i+1; the discovery service listens on
#   BASE_PORT+100. Data and logs live in a temporary directory; every
#   process started here is stopped and the directory removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=debug
check=false
while [ $# -gt 0 ]; do
    case "$1" in
    --release) profile=release ;;
    --check) check=true ;;
    -h | --help)
        sed -n '2,16p' "$0"
        exit 0
        ;;
    *) break ;;
    esac
    shift
done
base=${1:-32579}

build_flags=()
[ "$profile" = release ] && build_flags=(--release)
# The whole workspace, so the binaries are the ones the tests use.
cargo build "${build_flags[@]}" --workspace --bins >&2
bin=target/$profile

dir=$(mktemp -d -t cetera-discovery-demo-XXXXXX)
pids=()
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until $1 answers 200, for up to 30 s.
wait_http() {
    for _ in $(seq 300); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no answer from $1; logs in $dir" >&2
    return 1
}

service="http://127.0.0.1:$((base + 100))"
"$bin/cetera-discovery" --listen-addr "127.0.0.1:$((base + 100))" --data-dir "$dir/discovery" \
    >"$dir/discovery.log" 2>&1 &
pids+=($!)
wait_http "$service/health"
echo "discovery service on $service"

url=$("$bin/ceteractl" discovery new --size 3 --discovery-endpoint "$service")
echo "token URL: $url"

endpoints=""
for i in 0 1 2; do
    client=$((base + 10 * i))
    peer=$((client + 1))
    endpoints+="${endpoints:+,}127.0.0.1:$client"
    "$bin/cetera" --name "m$i" --data-dir "$dir/m$i" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --discovery "$url" >"$dir/m$i.log" 2>&1 &
    pids+=($!)
    echo "started m$i (client 127.0.0.1:$client, peer 127.0.0.1:$peer)"
done
for i in 0 1 2; do
    wait_http "http://127.0.0.1:$((base + 10 * i))/health"
done

echo
echo "registrations under the token:"
curl -fs "$url" && echo
echo
"$bin/ceteractl" --endpoints="$endpoints" member list -w table
"$bin/ceteractl" --endpoints="$endpoints" endpoint status -w table
"$bin/ceteractl" --endpoints="$endpoints" put greeting "hello from a discovered cluster" >/dev/null
"$bin/ceteractl" --endpoints="127.0.0.1:$((base + 20))" get greeting

if [ "$check" = true ]; then
    exit 0
fi
echo
echo "logs in $dir"
echo "try:  $bin/ceteractl --endpoints=$endpoints endpoint status -w table"
echo "Ctrl-C stops the cluster and the discovery service."
wait
