#!/usr/bin/env bash
# Measures block propagation latency across a 4-node loopback network (testnet/testnet.sh
# in a temp run dir): node 1 mines, nodes 2-4 only listen; for each block, the time from
# node 1's "mined block" log line to each peer's "accepted block" line. Prints p50/p99
# (target: p50 < 20 ms, p99 < 100 ms).
#
# Usage: scripts/propagation.sh [BLOCKS] [DIFFICULTY]   (defaults: 200 blocks, 18 bits)
# Environment: KVCHAIN_BENCH_PORT, the p2p port base (default 4600: ports 4601..4604).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
blocks=${1:-200}
difficulty=${2:-18}
nodes=4
ME=scripts/propagation.sh
# shellcheck source=testnet/private.sh
source testnet/private.sh
private_testnet propagation "${KVCHAIN_BENCH_PORT:-4600}" # and lib.sh: wait_for, json_get
net=$NET

"$net" up "$nodes" --difficulty "$difficulty" -- --mine off --log info >/dev/null

# at_least I KEY N: whether KEY of node I's `status --json` is at least N.
at_least() {
    local v
    v=$("$net" send "$1" "status --json" | json_get "$2")
    is_uint "$v" && ((v >= $3))
}
# Whether every node has node 1's height.
synced() {
    local i height
    height=$("$net" send 1 "status --json" | json_get height)
    for ((i = 2; i <= nodes; i++)); do
        at_least "$i" height "$height" || return 1
    done
}

wait_for 10 "node 1 to see every other node" at_least 1 peers $((nodes - 1))
# Let the gossip mesh form (heartbeat 0.5 s) before the first block.
sleep 2
"$net" send 1 "mine always" >/dev/null
wait_for 300 "node 1 to mine $blocks blocks" at_least 1 height "$blocks" ||
    echo "measuring the blocks mined so far" >&2
"$net" send 1 "mine off" >/dev/null
wait_for 10 "the last blocks to reach every node" synced || true
python3 scripts/propagation.py "$KVCHAIN_TESTNET_DIR/node1.log" "$KVCHAIN_TESTNET_DIR"/node[2-9].log
