#!/usr/bin/env bash
# Starts a three-member cetera cluster on this machine and leaves it running
# until Ctrl-C, printing how to talk to it.
#
# Usage: scripts/demo-cluster.sh [--release] [BASE_PORT]
#   BASE_PORT (default 12379, below the ephemeral port range): member i
#   serves clients on BASE_PORT+10*i and peers on BASE_PORT+10*i+1. Data
#   lives in a temporary directory that is removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; shift; fi
base=${1:-12379}

cargo build ${profile:+$([ "$profile" = release ] && echo --release)} -p node --bin cetera >&2
bin=target/$profile/cetera
dir=$(mktemp -d -t cetera-demo-XXXXXX)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

cluster=""
for i in 0 1 2; do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 10 * i + 1))"
done
endpoints=""
for i in 0 1 2; do
    client=$((base + 10 * i)); peer=$((client + 1))
    endpoints+="${endpoints:+,}127.0.0.1:$client"
    "$bin" --name "m$i" --data-dir "$dir/m$i" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "$cluster" --initial-cluster-token demo >"$dir/m$i.log" 2>&1 &
    pids+=($!)
done

for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$base/health" >/dev/null 2>&1 && break
    sleep 0.1
done
echo "cluster up; logs in $dir"
echo "try:  ETCDCTL_API=3 etcdctl --endpoints=$endpoints endpoint status -w table"
ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status -w table 2>/dev/null || true
echo "Ctrl-C stops the cluster."
wait
