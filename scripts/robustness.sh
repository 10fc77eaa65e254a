#!/usr/bin/env bash
# Longer robustness runs than the test suite's: random reads, writes,
# deletes and compare-and-swaps from six clients on a 3-member cluster while
# members are killed (-9), stopped, restarted, paused or cut off from their
# peers one at a time; each
# history must be linearizable against the store's revision log and every
# member must hold the same log (tests/tests/robustness.rs, tests/src/history.rs).
#
# Usage: scripts/robustness.sh [--etcd] [ROUNDS] [SECONDS]
#   ROUNDS (default 5) runs of SECONDS (default 120) each, on cetera, or on
#   the real etcd with --etcd (which checks the checker). Stops at the first
#   failure and prints its seed: CETERA_ROBUSTNESS_SEED=<seed> with the same
#   SECONDS replays the same choices (the cluster's timing still varies).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

flavor=on_cetera
if [ "${1:-}" = "--etcd" ]; then flavor=on_etcd; shift; fi
rounds=${1:-5}
seconds=${2:-120}

cargo build --workspace --bins >&2
out=$(mktemp -t cetera-robustness-XXXXXX.log)
for round in $(seq "$rounds"); do
    seed=${CETERA_ROBUSTNESS_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
    echo "round $round/$rounds: $flavor, $seconds s, CETERA_ROBUSTNESS_SEED=$seed" >&2
    status=0
    CETERA_ROBUSTNESS_SECONDS=$seconds CETERA_ROBUSTNESS_SEED=$seed \
        cargo nextest run -p tests --test robustness --no-capture \
        -E "test(/^$flavor::/)" >"$out" 2>&1 || status=$?
    grep -E '^[0-9]+ operations' "$out" >&2 || true
    if [ "$status" -ne 0 ]; then
        grep -A 40 -E '^Error|not linearizable|disagree' "$out" >&2 || tail -n 60 "$out" >&2
        echo "round $round failed (CETERA_ROBUSTNESS_SEED=$seed); full output in $out" >&2
        exit 1
    fi
done
rm -f "$out"
echo "all $rounds rounds linearizable" >&2
