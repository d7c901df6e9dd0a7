# net.sh: a loopback network of HTTP-serving nodes for the experiment scripts (and
# scripts/throughput.sh). Sourced after testnet/private.sh's `private_testnet`; defines
# functions only.
#
#   net_up N DIFFICULTY [NODE-ARG...]   starts N nodes, waits until each sees all others
#   net_down                             stops them and removes their data
#   net_sample CSV SECONDS               polls every node's /status into CSV (SAMPLER: pid)
#   net_agree N MIN                      whether nodes 1..N that answer share one tip
# NET_LOG sets the nodes' --log filter (default warn); NET_SETTLE the seconds given the
# gossip mesh to form after every node sees the others (default 2).
# After net_up: NODE_URLS (each node's HTTP base URL), NODE_PIDS, BENCH_NODES (the
# `--node URL` flags for kvchain bench, one per node).
# shellcheck shell=bash

# Node I's field KEY from the node.json the testnet keeps of it.
net_field() { json_get "$2" <"$KVCHAIN_TESTNET_DIR/node$1.json"; }

# KEY of node I's `status --json` (empty if the node does not answer).
net_status() { "$NET" send "$1" "status --json" 2>/dev/null | json_get "$2"; }

# Whether node I sees at least N other nodes.
net_sees() {
    local peers
    peers=$(net_status "$1" peers)
    is_uint "$peers" && ((peers >= $2))
}

net_up() {
    local n=$1 difficulty=$2 i
    shift 2
    "$NET" up "$n" --difficulty "$difficulty" --http -- --log "${NET_LOG:-warn}" "$@" >/dev/null
    NODE_URLS=() NODE_PIDS=() BENCH_NODES=()
    for ((i = 1; i <= n; i++)); do
        wait_for 30 "node $i to see every other node" net_sees "$i" $((n - 1)) || return 1
        NODE_URLS+=("$(net_field "$i" http)")
        NODE_PIDS+=("$(net_field "$i" pid)")
        BENCH_NODES+=(--node "$(net_field "$i" http)")
    done
    # Let the gossip mesh form (heartbeat 0.5 s) before any load starts.
    sleep "${NET_SETTLE:-2}"
}

net_down() { "$NET" down >/dev/null || true; }

# CPU seconds (user + system) process $1 has used; empty if it is gone.
cpu_secs() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # Fields 14 and 15 of stat are the 12th and 13th after the state.
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"$stat"
}

# Whether file $1 holds a row after its header.
has_rows() { [[ -f $1 && $(wc -l <"$1") -gt 1 ]]; }

# Starts sample_status.py polling every node's /status into CSV $1 for at most $2
# seconds, sets SAMPLER to its pid, and waits (bounded) for its first sample. Plain
# python3: it needs only the standard library, and $! is then its pid.
net_sample() {
    python3 "$ROOT/scripts/experiments/sample_status.py" --out "$1" --max-seconds "$2" \
        "${NODE_URLS[@]}" &
    # shellcheck disable=SC2034 # for the scripts that source this file
    SAMPLER=$!
    wait_for 10 "the first status samples" has_rows "$1" || exp_die "the status sampler did not start"
}

# Whether every node of 1..$1 that answers has the same tip, and at least $2 answer.
net_agree() {
    local i tip first="" up=0
    for ((i = 1; i <= $1; i++)); do
        tip=$(net_status "$i" tip)
        [[ -n $tip ]] || continue
        up=$((up + 1))
        first=${first:-$tip}
        [[ $tip == "$first" ]] || return 1
    done
    ((up >= $2))
}
