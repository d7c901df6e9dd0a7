# net.sh: a loopback network of HTTP-serving nodes for the experiment scripts (and
# scripts/throughput.sh). Sourced after testnet/private.sh's `private_testnet`; defines
# functions only.
#
#   net_up N DIFFICULTY [NODE-ARG...]   starts N nodes, waits until each sees all others
#   net_down                             stops them and removes their data
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
