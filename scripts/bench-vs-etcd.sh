#!/usr/bin/env bash
# Runs the same cetera-bench workloads against a 3-node cetera cluster and a
# 3-node etcd cluster on this machine, side by side, and prints a comparison.
#
# Usage: scripts/bench-vs-etcd.sh [--quick] [--etcd-only | --cetera-only]
#                                 [--only kv|watch|import] [--no-build] [--keep]
#                                 [--out FILE]
#
#   --quick        small totals, for smoke tests (about a minute)
#   --only kv      only the KV workloads; --only watch: only the watch ones;
#                  --only import: only the bulk import (ceteractl import of
#                  100,000 keys, 256-byte values; 20,000 with --quick)
#   --etcd-only    benchmark etcd alone (cetera columns show "-")
#   --cetera-only  benchmark cetera alone (etcd columns show "-")
#   --no-build     use the binaries already in target/release
#   --keep         keep the work directory (data dirs, logs, JSON results)
#   --out FILE     also write the final table (markdown) to FILE
#
# Environment: ETCD_BIN (default /usr/bin/etcd), CETERA_BIN, BENCH_BIN and
# CTL_BIN (default target/release/{cetera,cetera-bench,ceteractl}); ETCD_BASE_PORT and
# CETERA_BASE_PORT (defaults 22379 and 24379: below Linux's ephemeral port
# range, so no outgoing connection can hold one) move the clusters' ports,
# so two runs on one machine need not collide.
#
# Everything listens on 127.0.0.1 only: etcd on 22379-22384, cetera on
# 24379-24384. Every process started here is stopped on exit, even on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
RUN_ETCD=1
RUN_CETERA=1
BUILD=1
KEEP=0
OUT=""
ONLY=all

# The comment block at the top of this file, without its '# '.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --etcd-only) RUN_CETERA=0 ;;
        --cetera-only) RUN_ETCD=0 ;;
        --no-build) BUILD=0 ;;
        --keep) KEEP=1 ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        --only) ONLY=${2:?--only needs kv, watch or import}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ $ONLY != all && $ONLY != kv && $ONLY != watch && $ONLY != import ]]; then
    echo "--only takes kv, watch or import, not $ONLY" >&2
    exit 2
fi
if [[ $RUN_ETCD == 0 && $RUN_CETERA == 0 ]]; then
    echo "--etcd-only and --cetera-only exclude each other" >&2
    exit 2
fi

ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
CETERA_BIN=${CETERA_BIN:-$ROOT/target/release/cetera}
BENCH_BIN=${BENCH_BIN:-$ROOT/target/release/cetera-bench}
CTL_BIN=${CTL_BIN:-$ROOT/target/release/ceteractl}
HOST=127.0.0.1
ETCD_BASE_PORT=${ETCD_BASE_PORT:-22379}
CETERA_BASE_PORT=${CETERA_BASE_PORT:-24379}
# Both clusters get the same raft timing; --snapshot-count stays at its default.
RAFT_FLAGS=(--heartbeat-interval 100 --election-timeout 1000)

# ---------------------------------------------------------------- workloads
# name | cetera-bench arguments. Writes go to the leader, reads to all members.
COMMON=(--key-size 8 --val-size 256 --keyspace 10000)
if [[ $QUICK == 1 ]]; then
    T_PUT1=1000 T_PUT64=10000 T_PUT256=10000 T_GET=20000 T_TXN=6000 CAP=15s
else
    T_PUT1=5000 T_PUT64=60000 T_PUT256=80000 T_GET=150000 T_TXN=40000 CAP=60s
fi
WORKLOADS=(
    "put-1|put --clients 1 --conns 1 --target-leader --total $T_PUT1"
    "put-64|put --clients 64 --conns 8 --target-leader --total $T_PUT64"
    "put-256|put --clients 256 --conns 32 --target-leader --total $T_PUT256"
    "get-l-64|range --consistency l --clients 64 --conns 9 --total $T_GET"
    "get-s-64|range --consistency s --skip-populate --clients 64 --conns 9 --total $T_GET"
    "txn-64|txn --clients 64 --conns 8 --target-leader --total $T_TXN"
)
[[ $ONLY == watch || $ONLY == import ]] && WORKLOADS=()

# Watch delivery: 100 watchers on one prefix, one stream each, spread over
# one connection per member, while one writer (on its own connection to the
# leader) puts T_WATCH keys under the prefix: with one put in flight
# (watch-100) and with 16 (watch-100-w16, so the write path is less of the
# bottleneck and delivery more). watch-1000-w16 has 1000 watchers on 100
# streams and fewer puts, so delivery dominates. Latency is from each put's
# send to each event's arrival.
if [[ $QUICK == 1 ]]; then
    T_WATCH=500 T_WATCH_WIDE=200 IDLE_WATCHES=2000
else
    T_WATCH=2000 T_WATCH_WIDE=500 IDLE_WATCHES=10000
fi
WATCH_WORKLOADS=(
    "watch-100|watch --watchers 100 --conns 3 --target-leader --clients 1 --total $T_WATCH --prefix bw1/"
    "watch-100-w16|watch --watchers 100 --conns 3 --target-leader --clients 16 --total $T_WATCH --prefix bw16/"
    "watch-1000-w16|watch --watchers 1000 --streams 100 --conns 3 --target-leader --clients 16 --total $T_WATCH_WIDE --prefix bwide/"
)
[[ $ONLY == kv || $ONLY == import ]] && WATCH_WORKLOADS=()

# Bulk import: `ceteractl import` of NDJSON records {key, value} (keys
# import/000000..., 256-byte values) into each cluster, through all three
# members, in the server's default transaction limits (128 puts per txn).
# It runs last: it grows each store by the imported keys.
if [[ $QUICK == 1 ]]; then T_IMPORT=20000; else T_IMPORT=100000; fi
[[ $ONLY == all || $ONLY == import ]] && RUN_IMPORT=1 || RUN_IMPORT=0

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-etcd.XXXXXX")
PIDS=()
declare -A MEMBER_PIDS=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "== $*" >&2; }
die() { echo "bench-vs-etcd: $*" >&2; exit 1; }

client_port() { echo $(($1 + 2 * ($2 - 1))); }     # base, member 1..3
peer_port() { echo $(($1 + 2 * ($2 - 1) + 1)); }

# endpoints SYSTEM -> host:port,host:port,host:port
endpoints() {
    local base=$1 list=() i
    for i in 1 2 3; do list+=("$HOST:$(client_port "$base" "$i")"); done
    (IFS=,; echo "${list[*]}")
}

# start_cluster SYSTEM BIN BASE_PORT: starts 3 members with etcd's flags.
start_cluster() {
    local system=$1 bin=$2 base=$3 cluster="" i
    for i in 1 2 3; do
        cluster+="${cluster:+,}$system$i=http://$HOST:$(peer_port "$base" "$i")"
    done
    for i in 1 2 3; do
        local name=$system$i curl purl
        curl=http://$HOST:$(client_port "$base" "$i")
        purl=http://$HOST:$(peer_port "$base" "$i")
        mkdir -p "$WORK/$system"
        "$bin" --name "$name" --data-dir "$WORK/$system/$name.data" \
            --listen-client-urls "$curl" --advertise-client-urls "$curl" \
            --listen-peer-urls "$purl" --initial-advertise-peer-urls "$purl" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "bench-$system" "${RAFT_FLAGS[@]}" \
            >"$WORK/$system/$name.log" 2>&1 &
        PIDS+=($!)
        MEMBER_PIDS[$name]=$!
    done
}

# wait_healthy SYSTEM BASE_PORT: every member answers /health with true.
wait_healthy() {
    local system=$1 base=$2 i deadline=$((SECONDS + 60))
    for i in 1 2 3; do
        local url
        url=http://$HOST:$(client_port "$base" "$i")/health
        until curl -sf --max-time 2 "$url" 2>/dev/null | grep -q '"health":"true"'; do
            if ! kill -0 "${MEMBER_PIDS[$system$i]}" 2>/dev/null; then
                tail -n 20 "$WORK/$system/$system$i.log" >&2 || true
                die "$system$i exited during startup (log above)"
            fi
            ((SECONDS < deadline)) || die "$system$i not healthy after 60 s ($url)"
            sleep 0.2
        done
    done
    log "$system: 3 members healthy"
}

# ---------------------------------------------------------------- results
json_field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1"; }

# run_workload SYSTEM BASE_PORT NAME ARGS...: one cetera-bench run.
run_workload() {
    local system=$1 base=$2 name=$3
    shift 3
    local out=$WORK/results/$system-$name.json
    printf '%-7s %-9s ' "$system" "$name" >&2
    # In the background, so that a signal reaches the trap at once.
    "$BENCH_BIN" "$@" "${COMMON[@]}" --endpoints "$(endpoints "$base")" \
        --duration "$CAP" --json >"$out" 2>"$out.err" &
    PIDS+=($!)
    if wait $!; then
        printf 'qps=%-7s p50=%7sms p99=%7sms' "$(fmt "$(json_field "$out" qps)" 0)" \
            "$(fmt "$(json_field "$out" p50_ms)" 2)" "$(fmt "$(json_field "$out" p99_ms)" 2)" >&2
        local errors
        errors=$(json_field "$out" errors)
        [[ ${errors:-0} == 0 ]] || printf '  errors=%s' "$errors" >&2
        echo >&2
    else
        echo "FAILED: $(tail -n 1 "$out.err")" >&2
        : >"$out"
    fi
}

# rss_mib SYSTEM MEMBER: VmRSS of one member in MiB, or empty if it is gone.
rss_mib() {
    local pid=${MEMBER_PIDS[$1$2]}
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || true
}

# mean of the members' RSS, or "-"
rss_mean() {
    local system=$1 sum=0 n=0 i r
    for i in 1 2 3; do
        r=$(rss_mib "$system" "$i")
        [[ -n $r ]] || continue
        sum=$(awk -v a="$sum" -v b="$r" 'BEGIN { print a + b }')
        n=$((n + 1))
    done
    if ((n > 0)); then awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.1f", s / n }'; else echo -; fi
}

# value SYSTEM NAME FIELD -> number or "-"
value() {
    local f=$WORK/results/$1-$2.json v=""
    [[ -s $f ]] && v=$(json_field "$f" "$3")
    echo "${v:--}"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

# fmt NUMBER DECIMALS, with "-" (or nothing) for a missing value
fmt() {
    if [[ ${1:--} == - ]]; then
        echo -
    else
        awk -v x="$1" -v d="$2" 'BEGIN { printf "%.*f", d, x }'
    fi
}

print_table() {
    echo "| workload | cetera qps | etcd qps | qps ratio | cetera p50 ms | etcd p50 ms | cetera p99 ms | etcd p99 ms | p99 ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local entry name
    for entry in "${WORKLOADS[@]}"; do
        name=${entry%%|*}
        local cq eq c50 e50 c99 e99
        cq=$(value cetera "$name" qps) eq=$(value etcd "$name" qps)
        c50=$(value cetera "$name" p50_ms) e50=$(value etcd "$name" p50_ms)
        c99=$(value cetera "$name" p99_ms) e99=$(value etcd "$name" p99_ms)
        echo "| $name | $(fmt "$cq" 0) | $(fmt "$eq" 0) | $(ratio "$cq" "$eq") |" \
            "$(fmt "$c50" 2) | $(fmt "$e50" 2) | $(fmt "$c99" 2) | $(fmt "$e99" 2) |" \
            "$(ratio "$c99" "$e99") |"
    done
    local cr er
    cr=$([[ $RUN_CETERA == 1 ]] && rss_mean cetera || echo -)
    er=$([[ $RUN_ETCD == 1 ]] && rss_mean etcd || echo -)
    echo "| RSS per member, MiB | $cr | $er | $(ratio "$cr" "$er") | | | | | |"
}

# run_watch SYSTEM BASE_PORT NAME ARGS...: one watch delivery run.
run_watch() {
    local system=$1 base=$2 name=$3
    shift 3
    local out=$WORK/results/$system-$name.json
    printf '%-7s %-13s ' "$system" "$name" >&2
    "$BENCH_BIN" "$@" --key-size 8 --val-size 256 --endpoints "$(endpoints "$base")" \
        --duration "$CAP" --json >"$out" 2>"$out.err" &
    PIDS+=($!)
    if wait $!; then
        printf 'events/s=%-7s p50=%7sms p99=%7sms events=%s/%s' \
            "$(fmt "$(json_field "$out" events_per_s)" 0)" \
            "$(fmt "$(json_field "$out" p50_ms)" 2)" "$(fmt "$(json_field "$out" p99_ms)" 2)" \
            "$(json_field "$out" events)" "$(json_field "$out" expected_events)" >&2
        local anomalies
        anomalies=$(json_field "$out" anomalies)
        [[ ${anomalies:-0} == 0 ]] || printf '  ANOMALIES=%s' "$anomalies" >&2
        echo >&2
    else
        echo "FAILED: $(tail -n 1 "$out.err")" >&2
        : >"$out"
    fi
}

# run_idle SYSTEM BASE_PORT: IDLE_WATCHES idle watches on member 1 (100
# streams over 10 connections); its RSS growth per watch.
run_idle() {
    local system=$1 base=$2
    local out=$WORK/results/$system-watch-idle.json
    printf '%-7s %-13s ' "$system" "watch-idle" >&2
    "$BENCH_BIN" watch-idle --watchers "$IDLE_WATCHES" --streams 100 --conns 10 \
        --endpoints "$HOST:$(client_port "$base" 1)" --rss-pid "${MEMBER_PIDS[${system}1]}" \
        --settle 3s --duration "$CAP" --json >"$out" 2>"$out.err" &
    PIDS+=($!)
    if wait $!; then
        printf 'rss growth=%sMiB per watch=%sB created in %ss\n' \
            "$(json_field "$out" rss_growth_mib)" "$(json_field "$out" bytes_per_watch)" \
            "$(json_field "$out" create_s)" >&2
    else
        echo "FAILED: $(tail -n 1 "$out.err")" >&2
        : >"$out"
    fi
}

print_watch_table() {
    echo "| watch workload | cetera events/s | etcd events/s | events/s ratio | cetera p50 ms | etcd p50 ms | cetera p99 ms | etcd p99 ms | p99 ratio |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local entry name
    for entry in "${WATCH_WORKLOADS[@]}"; do
        name=${entry%%|*}
        local ce ee c50 e50 c99 e99
        ce=$(value cetera "$name" events_per_s) ee=$(value etcd "$name" events_per_s)
        c50=$(value cetera "$name" p50_ms) e50=$(value etcd "$name" p50_ms)
        c99=$(value cetera "$name" p99_ms) e99=$(value etcd "$name" p99_ms)
        echo "| $name | $(fmt "$ce" 0) | $(fmt "$ee" 0) | $(ratio "$ce" "$ee") |" \
            "$(fmt "$c50" 2) | $(fmt "$e50" 2) | $(fmt "$c99" 2) | $(fmt "$e99" 2) |" \
            "$(ratio "$c99" "$e99") |"
    done
    local cg eg cb eb
    cg=$(value cetera watch-idle rss_growth_mib) eg=$(value etcd watch-idle rss_growth_mib)
    cb=$(value cetera watch-idle bytes_per_watch) eb=$(value etcd watch-idle bytes_per_watch)
    echo "| $IDLE_WATCHES idle watches: RSS growth MiB | $(fmt "$cg" 1) | $(fmt "$eg" 1) | $(ratio "$cg" "$eg") | | | | | |"
    echo "| bytes per idle watch | $(fmt "$cb" 0) | $(fmt "$eb" 0) | $(ratio "$cb" "$eb") | | | | | |"
}

# ---------------------------------------------------------------- import
# The NDJSON file: one record per line, the same value everywhere.
write_import_file() {
    local value
    value=$(head -c 256 /dev/zero | tr '\0' 'v')
    awk -v n="$T_IMPORT" -v v="$value" \
        'BEGIN { for (i = 0; i < n; i++) printf "{\"key\":\"import/%06d\",\"value\":\"%s\"}\n", i, v }' \
        >"$WORK/import.ndjson"
}

# Imports the file into one system; records keys/s and wall seconds.
run_import() {
    local system=$1 base=$2 out="$WORK/results/$1-import.txt"
    log "$system: import of $T_IMPORT keys"
    "$CTL_BIN" --endpoints="$(endpoints "$base")" --command-timeout=60s \
        import "$WORK/import.ndjson" >"$out" 2>&1 || die "$system: import failed: $(tail -n 3 "$out")"
    tail -n 1 "$out" >&2
}

# "imported 100000 keys in 4.34s (23060 keys/s)" -> 23060
import_rate() {
    local file="$WORK/results/$1-import.txt"
    [[ -f $file ]] && sed -n 's/.*(\([0-9]*\) keys\/s).*/\1/p' "$file" | tail -n 1
}

print_import_table() {
    local c e
    c=$(import_rate cetera || true)
    e=$(import_rate etcd || true)
    echo "| bulk import ($T_IMPORT keys, 256 B values) | cetera keys/s | etcd keys/s | ratio |"
    echo "|---|---:|---:|---:|"
    echo "| ceteractl import | ${c:--} | ${e:--} | $(ratio "${c:--}" "${e:--}") |"
}

# ---------------------------------------------------------------- main
if [[ $BUILD == 1 ]]; then
    log "building (cargo build --release -p node)"
    if [[ $RUN_CETERA == 1 ]]; then
        (cd "$ROOT" && cargo build --release -p node)
    else
        (cd "$ROOT" && cargo build --release -p node --bin cetera-bench --bin ceteractl)
    fi
fi
[[ -x $BENCH_BIN ]] || die "no $BENCH_BIN (build it, or drop --no-build)"
[[ $RUN_IMPORT == 0 || -x $CTL_BIN ]] || die "no $CTL_BIN (build it, or drop --no-build)"
if [[ $RUN_ETCD == 1 && ! -x $ETCD_BIN ]]; then
    log "installing etcd-server (apt-get)"
    apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null
    [[ -x $ETCD_BIN ]] || die "no etcd at $ETCD_BIN"
fi
[[ $RUN_CETERA == 0 || -x $CETERA_BIN ]] || die "no cetera binary at $CETERA_BIN"
command -v curl >/dev/null || die "curl is needed for the health checks"

SYSTEMS=()
[[ $RUN_CETERA == 1 ]] && SYSTEMS+=(cetera)
[[ $RUN_ETCD == 1 ]] && SYSTEMS+=(etcd)
base_of() { [[ $1 == etcd ]] && echo $ETCD_BASE_PORT || echo $CETERA_BASE_PORT; }
bin_of() { [[ $1 == etcd ]] && echo "$ETCD_BIN" || echo "$CETERA_BIN"; }

mkdir -p "$WORK/results"
for system in "${SYSTEMS[@]}"; do
    log "starting 3-node $system ($(endpoints "$(base_of "$system")"))"
    start_cluster "$system" "$(bin_of "$system")" "$(base_of "$system")"
done
for system in "${SYSTEMS[@]}"; do
    wait_healthy "$system" "$(base_of "$system")"
done

log "machine: $(nproc) cores; $("$ETCD_BIN" --version 2>/dev/null | head -n 1 || true)"
round=0
if [[ $ONLY == all || $ONLY == watch ]]; then
    # Idle watches first, on fresh members: a heap grown by earlier
    # workloads would absorb (and hide) what the watches cost.
    log "watch workloads ($([[ $QUICK == 1 ]] && echo quick || echo full); $IDLE_WATCHES idle watches, $T_WATCH puts)"
    for system in "${SYSTEMS[@]}"; do
        run_idle "$system" "$(base_of "$system")"
    done
    for entry in "${WATCH_WORKLOADS[@]}"; do
        name=${entry%%|*}
        read -r -a args <<<"${entry#*|}"
        order=("${SYSTEMS[@]}")
        if ((round % 2 == 1 && ${#SYSTEMS[@]} == 2)); then order=("${SYSTEMS[1]}" "${SYSTEMS[0]}"); fi
        for system in "${order[@]}"; do
            run_watch "$system" "$(base_of "$system")" "$name" "${args[@]}"
        done
        round=$((round + 1))
    done
fi
[[ ${#WORKLOADS[@]} == 0 ]] ||
    log "workloads ($([[ $QUICK == 1 ]] && echo quick || echo full); key 8 B, value 256 B, keyspace 10000)"
for entry in "${WORKLOADS[@]}"; do
    name=${entry%%|*}
    read -r -a args <<<"${entry#*|}"
    # Alternate which system goes first, so neither always runs on a warmer
    # (or more fragmented) machine.
    order=("${SYSTEMS[@]}")
    if ((round % 2 == 1 && ${#SYSTEMS[@]} == 2)); then order=("${SYSTEMS[1]}" "${SYSTEMS[0]}"); fi
    for system in "${order[@]}"; do
        run_workload "$system" "$(base_of "$system")" "$name" "${args[@]}"
    done
    round=$((round + 1))
done

if [[ $RUN_IMPORT == 1 ]]; then
    write_import_file
    order=("${SYSTEMS[@]}")
    if ((round % 2 == 1 && ${#SYSTEMS[@]} == 2)); then order=("${SYSTEMS[1]}" "${SYSTEMS[0]}"); fi
    for system in "${order[@]}"; do
        run_import "$system" "$(base_of "$system")"
    done
fi

log "resident memory (VmRSS)"
for system in "${SYSTEMS[@]}"; do
    for i in 1 2 3; do
        r=$(rss_mib "$system" "$i")
        printf '%-7s member %s  pid %-7s %s MiB\n' "$system" "$i" \
            "${MEMBER_PIDS[$system$i]}" "${r:-gone}" >&2
    done
done

echo
table=""
if [[ ${#WORKLOADS[@]} -gt 0 ]]; then
    table=$(print_table)
fi
if [[ $ONLY == all || $ONLY == watch ]]; then
    table+=${table:+$'\n\n'}$(print_watch_table)
fi
if [[ $RUN_IMPORT == 1 ]]; then
    table+=${table:+$'\n\n'}$(print_import_table)
fi
echo "$table"
if [[ -n $OUT ]]; then
    echo "$table" >"$OUT"
    log "table written to $OUT"
fi
