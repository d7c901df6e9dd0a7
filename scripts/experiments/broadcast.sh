#!/usr/bin/env bash
# broadcast.sh: experiment 3, broadcast scaling. For each network size N it starts N real
# kvchain nodes (the release binary, on loopback, HTTP APIs on) through testnet/private.sh
# and measures, on that network:
#   - tx propagation: writes submitted round-robin at every node, one every TX_GAP s; for
#     each (write, other node) the time from the origin's mempool taking it to that node's
#     mempool taking it (GET /tx/ID answers `received_us`); no node mines meanwhile;
#   - gossip cost: gossipsub's counters (/metrics) before and after the writes: data
#     messages and bytes sent and received (duplicates included) per tx per node, IWANTs,
#     and every stream byte (libp2p_bandwidth_bytes_total); next to what naive flooding
#     would send on the same peers (each node sends each new message once to every peer);
#   - block propagation: node 1 mines, the others listen; node 1's "mined block" log line
#     to each other node's "accepted block" line, per block (like scripts/propagation.sh).
# Writes OUT/broadcast.csv (one row per N), OUT/broadcast.png, OUT/meta.txt, and prints
# a table. All N nodes share this machine's cores: see docs/experiments/broadcast/NOTES.md.
#
# Usage: scripts/experiments/broadcast.sh [--quick | --smoke] [--out DIR]
#   full: N = 2 4 8 12 16 24 32; --quick: 2 4 8 (under 3 min); --smoke: 2 3 (under 1 min)
# Environment: SIZES (e.g. "2 4 8 16"), DIFFICULTY (bits, default 21: ~0.3 s blocks), PORT_BASE
#   (default 5600: p2p 5601.., HTTP 5701..).
set -euo pipefail
EXP=broadcast
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"

case $MODE in
    full) sizes=(2 4 8 12 16 24 32) txs=120 tx_gap=0.05 blocks=60 ;;
    quick) sizes=(2 4 8) txs=40 tx_gap=0.05 blocks=20 ;;
    smoke) sizes=(2 3) txs=10 tx_gap=0.05 blocks=5 ;;
esac
read -r -a sizes <<<"${SIZES:-${sizes[*]}}"
difficulty=${DIFFICULTY:-21}
port_base=${PORT_BASE:-5600}
for n in "${sizes[@]}"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 2 || port_base + 100 + n >= 6000)); then
        exp_die "each size must be 2 or more, with HTTP ports below 6000 (got $n)"
    fi
done

ME=scripts/experiments/broadcast.sh
export KVCHAIN_TESTNET_BIN=$BIN # built by exp_init; testnet.sh must not build again
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet broadcast "$port_base" # TMP, NET; lib.sh: wait_for, json_get
py() { exp_python "$ROOT/scripts/experiments/broadcast.py" "$@"; }
csv=$OUT/broadcast.csv
rm -f "$csv"
{
    echo "sizes: ${sizes[*]}; writes per size: $txs, one every $tx_gap s; blocks per size: $blocks"
    echo "difficulty: $difficulty bits; node flags: --mine off --log info (node 1 mines in the block phase)"
} >>"$OUT/meta.txt"

# status_field I KEY: KEY of node I's GET /status (empty if it does not answer).
status_field() {
    curl -sf --max-time 2 "http://127.0.0.1:$((port_base + 100 + $1))/status" | json_get "$2"
}
# at_least I KEY V: whether KEY of node I's status is at least V.
at_least() {
    local v
    v=$(status_field "$1" "$2") || return 1
    is_uint "$v" && ((v >= $3))
}
# full_mesh N: whether every node has every other node as a peer.
full_mesh() {
    local i
    for ((i = 1; i <= $1; i++)); do at_least "$i" peers $(($1 - 1)) || return 1; done
}
# synced N: whether every node has node 1's height.
synced() {
    local i height
    height=$(status_field 1 height)
    is_uint "$height" || return 1
    for ((i = 2; i <= $1; i++)); do at_least "$i" height "$height" || return 1; done
}

for n in "${sizes[@]}"; do
    exp_log "N=$n: starting $n nodes"
    "$NET" up "$n" --difficulty "$difficulty" --http -- --mine off --log info >/dev/null
    urls=()
    for ((i = 1; i <= n; i++)); do urls+=("http://127.0.0.1:$((port_base + 100 + i))"); done
    # Nodes join through node 1 and find the rest by Kademlia; measure on whatever
    # topology formed (the flooding figure uses each node's actual peer count).
    wait_for 30 "a full mesh of $n nodes" full_mesh "$n" || exp_log "N=$n: measuring without a full mesh"
    sleep 2 # gossipsub's mesh forms on its heartbeat (0.5 s)
    run=$TMP/n$n
    mkdir -p "$run"

    exp_log "N=$n: $txs writes"
    py snapshot "$run/before.json" "${urls[@]}"
    py txs "$run/txs.json" "$txs" "$tx_gap" "${urls[@]}"
    py snapshot "$run/mid.json" "${urls[@]}"

    exp_log "N=$n: node 1 mines $blocks blocks"
    height=$(status_field 1 height)
    "$NET" send 1 "mine always" >/dev/null
    wait_for 120 "node 1 to mine $blocks blocks" at_least 1 height $((height + blocks)) ||
        exp_log "N=$n: measuring the blocks mined so far"
    "$NET" send 1 "mine off" >/dev/null
    wait_for 20 "every node to reach node 1's height" synced "$n" || true
    py snapshot "$run/after.json" "${urls[@]}"
    logs=()
    for ((i = 1; i <= n; i++)); do logs+=("$KVCHAIN_TESTNET_DIR/node$i.log"); done
    py blocks "$run/blocks.json" "${logs[@]}"
    py row "$csv" "$n" "$run"/{before,mid,after,txs,blocks}.json
    "$NET" down >/dev/null
done

py plot "$csv" "$OUT/broadcast.png"
{
    echo "== broadcast scaling ($MODE), $(sed -n 's/^machine: //p' "$OUT/meta.txt")"
    py table "$csv"
} | tee "$OUT/summary.txt"
exp_log "wrote $csv, $OUT/broadcast.png and $OUT/meta.txt"
exp_done
