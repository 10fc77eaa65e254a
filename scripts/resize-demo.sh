#!/usr/bin/env bash
# Scripted cluster resizing with ceteractl alone: starts a one-member cetera
# cluster, grows it to three members (each joins as a learner and is promoted
# once it has caught up), then shrinks it to two by moving leadership off the
# first member and removing it. Every step is printed; every process started
# here is stopped on exit, and the data lives in a temporary directory.
#
# Usage: scripts/resize-demo.sh [--bin-dir DIR] [--base-port PORT | --ports LIST] [--keep-data]
#
#   --bin-dir DIR   where `cetera` and `ceteractl` are (default: $CETERA_BIN_DIR,
#                   else target/debug, built first if missing)
#   --base-port P   member i serves clients on P+10*i and peers on P+10*i+1
#                   (default 42479)
#   --ports LIST    six explicit ports instead: c1,p1,c2,p2,c3,p3 (client and
#                   peer port of each member)
#   --keep-data     leave the data directory and logs behind
#
# The last thing printed is `ceteractl member list` of the final cluster.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

bin_dir=${CETERA_BIN_DIR:-}
base=42479
ports=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
        --bin-dir=*) bin_dir=${1#*=}; shift ;;
        --base-port) base=${2:?--base-port needs a port}; shift 2 ;;
        --base-port=*) base=${1#*=}; shift ;;
        --ports) ports=${2:?--ports needs a list}; shift 2 ;;
        --ports=*) ports=${1#*=}; shift ;;
        --keep-data) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "resize-demo: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -z "$bin_dir" ]; then
    bin_dir=$ROOT/target/debug
    if [ ! -x "$bin_dir/cetera" ] || [ ! -x "$bin_dir/ceteractl" ]; then
        (cd "$ROOT" && cargo build -p node --bin cetera --bin ceteractl) >&2
    fi
fi
CETERA=$bin_dir/cetera
CTL=$bin_dir/ceteractl
for b in "$CETERA" "$CTL"; do
    [ -x "$b" ] || { echo "resize-demo: $b is not an executable" >&2; exit 2; }
done

if [ -n "$ports" ]; then
    IFS=, read -r -a p <<<"$ports"
    [ "${#p[@]}" -eq 6 ] || { echo "resize-demo: --ports needs six ports" >&2; exit 2; }
    client_port=("${p[0]}" "${p[2]}" "${p[4]}")
    peer_port=("${p[1]}" "${p[3]}" "${p[5]}")
else
    client_port=($base $((base + 10)) $((base + 20)))
    peer_port=($((base + 1)) $((base + 11)) $((base + 21)))
fi
client_url() { echo "http://127.0.0.1:${client_port[$1]}"; }
peer_url() { echo "http://127.0.0.1:${peer_port[$1]}"; }

dir=$(mktemp -d -t cetera-resize-XXXXXX)
pids=(0 0 0)
# stop_member I: SIGTERM, then up to STOP_SECONDS for a graceful exit; a
# member that hangs in shutdown is killed and reported (exit status 1 at the
# end), never waited for without bound.
STOP_SECONDS=20
hung=0
stop_member() {
    local i=$1 pid=${pids[$1]}
    [ "$pid" != 0 ] || return 0
    kill "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$STOP_SECONDS"; then
        echo "resize-demo: m$i did not stop within ${STOP_SECONDS}s of SIGTERM; killing it" >&2
        tail -n 20 "$dir/m$i.log" >&2 || true
        kill -9 "$pid" 2>/dev/null || true
        hung=1
    fi
    wait "$pid" 2>/dev/null || true
    pids[$i]=0
}
# wait_gone PID SECONDS: whether PID exits within SECONDS.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
cleanup() {
    local status=$?
    for i in 0 1 2; do stop_member "$i"; done
    if [ "$keep" = 1 ]; then echo "data and logs kept in $dir"; else rm -rf "$dir"; fi
    if [ "$hung" = 1 ] && [ "$status" = 0 ]; then status=1; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; echo "[${SECONDS}s] $*" >&2; }
# ctl ENDPOINTS ARGS...: ceteractl, echoed.
ctl() {
    local endpoints=$1; shift
    echo "\$ ceteractl --endpoints=$endpoints $*" >&2
    "$CTL" --endpoints="$endpoints" "${timeouts[@]}" "$@"
}
# Every call is bounded, so a member that does not answer fails the step.
timeouts=(--dial-timeout=2s --command-timeout=5s)
die() { echo "resize-demo: $*" >&2; for i in 0 1 2; do [ -f "$dir/m$i.log" ] && tail -n 20 "$dir/m$i.log" >&2; done; exit 1; }

# Members die with this script even when it is killed too hard to clean up
# (SIGKILL), where setpriv exists.
guard=()
if [ -x /usr/bin/setpriv ]; then guard=(/usr/bin/setpriv --pdeathsig KILL --); fi

# start_member I CLUSTER STATE: runs cetera for member i in the background.
start_member() {
    local i=$1 cluster=$2 state=$3
    "${guard[@]}" "$CETERA" --name "m$i" --data-dir "$dir/m$i" \
        --listen-client-urls "$(client_url "$i")" --advertise-client-urls "$(client_url "$i")" \
        --listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" \
        --initial-cluster-token resize-demo >"$dir/m$i.log" 2>&1 &
    pids[$i]=$!
}

# until_ok SECONDS COMMAND...: retries COMMAND (quietly) every 0.2 s until it
# succeeds or SECONDS have passed.
until_ok() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# member_id ENDPOINTS NAME: the hex id `member list` shows for NAME.
member_id() {
    "$CTL" --endpoints="$1" "${timeouts[@]}" member list | awk -F', ' -v name="$2" '$3 == name { print $1 }'
}

# grow I ENDPOINTS: adds member i as a learner, starts it, promotes it.
grow() {
    local i=$1 endpoints=$2 added id cluster
    step "add m$i as a learner"
    added=$(ctl "$endpoints" member add "m$i" --learner --peer-urls="$(peer_url "$i")") \
        || die "member add m$i failed"
    echo "$added"
    id=$(awk 'NR == 1 { print $2 }' <<<"$added")
    cluster=$(sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' <<<"$added")
    [ -n "$id" ] && [ -n "$cluster" ] || die "cannot read the id or the cluster from member add"
    step "start m$i with --initial-cluster-state existing"
    start_member "$i" "$cluster" existing
    until_ok 60 "$CTL" --endpoints="$(client_url "$i")" "${timeouts[@]}" endpoint health \
        || die "m$i did not become healthy"
    ctl "$endpoints" member list
    step "promote m$i (refused until the learner has caught up)"
    until_ok 60 "$CTL" --endpoints="$endpoints" "${timeouts[@]}" member promote "$id" \
        || die "m$i could not be promoted"
    ctl "$endpoints" member list -w table
}

step "start m0 as a one-member cluster"
start_member 0 "m0=$(peer_url 0)" new
until_ok 60 "$CTL" --endpoints="$(client_url 0)" "${timeouts[@]}" endpoint health || die "m0 did not become healthy"
ctl "$(client_url 0)" put resize-demo/greeting hello
ctl "$(client_url 0)" member list -w table

grow 1 "$(client_url 0)"
grow 2 "$(client_url 0),$(client_url 1)"
all="$(client_url 0),$(client_url 1),$(client_url 2)"
ctl "$all" endpoint status -w table

step "shrink to two: move leadership off m0, then remove it"
m0=$(member_id "$all" m0)
m1=$(member_id "$all" m1)
[ -n "$m0" ] && [ -n "$m1" ] || die "cannot find m0 and m1 in member list"
echo "\$ ceteractl --endpoints=$all move-leader $m1" >&2
until_ok 30 "$CTL" --endpoints="$all" "${timeouts[@]}" move-leader "$m1" || die "move-leader to m1 failed"
ctl "$all" endpoint status -w table
rest="$(client_url 1),$(client_url 2)"
ctl "$rest" member remove "$m0" || die "member remove m0 failed"
# A removed member stops by itself.
wait_gone "${pids[0]}" 30 || echo "m0 is still running 30s after its removal; stopping it"
stop_member 0

step "the data survived every change"
ctl "$rest" get resize-demo/greeting --print-value-only
ctl "$rest" endpoint health

step "final member list"
ctl "$rest" member list
