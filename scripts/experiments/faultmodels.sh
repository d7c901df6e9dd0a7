#!/usr/bin/env bash
# Experiment 5: fault models. Each scenario runs on a fresh 4-node loopback network
# (difficulty 20, --confirmations 2) under a steady open-loop load of confirmed writes
# spread over all nodes; node 4 is the faulty one:
#   crash-stop      node 4 is killed (SIGKILL) and stays down
#   crash-recovery  node 4 is killed, and restarted one phase later
#   miner-crash     node 4 is killed the moment it has mined a block, while that block
#                   is still spreading, and restarted one phase later
#   omission        for one phase node 4 drops half of the gossip messages it receives
#                   and would send (restarted with the hidden --omit-gossip 0.5, and
#                   restarted without it after)
#   byzantine       for one phase a fifth, hostile peer (`kvchain hostile`) joins every
#                   node and sends only forged txs and blocks without proof of work
# Records what the clients see (every write) and each node's height and tip four times a
# second; reports availability, latency, the longest stall, how long until every live
# node agrees on the tip, and reads every confirmed write back afterwards.
#
# Usage: scripts/experiments/faultmodels.sh [--quick | --smoke] [--out DIR]
#   full: phases of 10 s at 200 writes/s (about 3 minutes); --quick: 6 s; --smoke: 1 s
# Writes OUT/faultmodels.csv (one row per scenario), OUT/SCENARIO/ (its writes, status
# samples and events), OUT/faultmodels.png, OUT/summary.txt and OUT/meta.txt.
set -euo pipefail
EXP=faultmodels
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"
ME=scripts/experiments/faultmodels.sh
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet exp-faultmodels 6300
# shellcheck source=scripts/experiments/net.sh
source "$ROOT/scripts/experiments/net.sh"
export KVCHAIN_TESTNET_BIN=$BIN
# Info logs carry the "mined block" line the miner-crash scenario waits for.
export NET_LOG=info

nodes=4
case $MODE in
    full) phase=10 rate=200 ;;
    quick) phase=6 rate=150 ;;
    smoke) phase=1 rate=100 NET_SETTLE=0.5 ;;
esac
scenarios=(crash-stop crash-recovery miner-crash omission byzantine)

# Kills node 4 right after its next "mined block" log line (bounded: 2 phases).
kill_after_mined() {
    local log=$KVCHAIN_TESTNET_DIR/node4.log seen deadline=$((SECONDS + 2 * phase))
    seen=$(grep -c "mined block" "$log" 2>/dev/null || true)
    while ((SECONDS < deadline)); do
        if (($(grep -c "mined block" "$log" 2>/dev/null || echo 0) > seen)); then
            "$NET" kill 4 >/dev/null
            grep "mined block" "$log" | tail -1 | sed -n 's/.*block=\([0-9a-f]*\).*/\1/p'
            return 0
        fi
        sleep 0.005
    done
    "$NET" kill 4 >/dev/null
    echo none
}

run() {
    local name=$1 dir=$OUT/$1 prefix bench started
    mkdir -p "$dir"
    exp_log "scenario $name"
    net_up "$nodes" 20 --confirmations 2 || exp_die "the network did not form"
    echo "t_unix,event,node" >"$dir/events.csv"
    event() { echo "$(date +%s.%N),$1,$2" >>"$dir/events.csv"; }
    net_sample "$dir/nodes.csv" $((phase * 3 + 120))
    prefix=$name-$(date +%s)
    "$BIN" bench "${BENCH_NODES[@]}" --rate "$rate" --connections 200 --wait confirmed \
        --seconds $((phase * 3)) --warmup 0 --timeout 60 --samples "$dir/writes.csv" \
        --prefix "$prefix" --json >"$dir/bench.json" &
    bench=$!
    event start 0
    started=$SECONDS
    sleep "$phase"
    case $name in
        crash-stop | crash-recovery) "$NET" kill 4 >/dev/null && event kill 4 ;;
        miner-crash)
            mined=$(kill_after_mined)
            event kill 4
            echo "$mined" >"$dir/mined_block.txt"
            ;;
        omission)
            "$NET" kill 4 >/dev/null
            printf '%s\n' --omit-gossip 0.5 >>"$KVCHAIN_TESTNET_DIR/node4.args"
            "$NET" restart 4 >/dev/null && event omit 4
            sleep $((started + 2 * phase - SECONDS > 0 ? started + 2 * phase - SECONDS : 0))
            "$NET" kill 4 >/dev/null
            head -n -2 "$KVCHAIN_TESTNET_DIR/node4.args" >"$TMP/args" &&
                cat "$TMP/args" >"$KVCHAIN_TESTNET_DIR/node4.args"
            "$NET" restart 4 >/dev/null && event omit-end 4
            ;;
        byzantine)
            local boot=() i
            for ((i = 1; i <= nodes; i++)); do boot+=(--bootstrap "$(net_field "$i" p2p)"); done
            event hostile 5
            "$BIN" hostile --network "$KVCHAIN_TESTNET_NETWORK" --difficulty 20 "${boot[@]}" \
                --seconds "$phase" --every-ms 20 >"$dir/hostile.jsonl" 2>"$dir/hostile.log" ||
                exp_die "kvchain hostile failed (see $dir/hostile.log)"
            event hostile-end 5
            # What the honest nodes hold against it (their ban lists, with reasons).
            for ((i = 1; i <= nodes; i++)); do
                "$NET" send "$i" peers >"$dir/peers_node$i.txt" 2>&1 || true
            done
            ;;
    esac
    if [[ $name == crash-recovery || $name == miner-crash ]]; then
        sleep $((started + 2 * phase - SECONDS > 0 ? started + 2 * phase - SECONDS : 0))
        "$NET" restart 4 >/dev/null && event restart 4
    fi
    # From the end of the load (the bench goes on to collect its last answers).
    sleep $((started + 3 * phase - SECONDS > 0 ? started + 3 * phase - SECONDS : 0))
    wait_for 60 "every live node to agree on the tip" net_agree "$nodes" 2 && event converged 0
    wait "$bench" || exp_die "kvchain bench failed in $name"
    event end 0
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    # Every confirmed write read back from node 1 and node 4 (if up), and whether the
    # block the crashed miner announced stayed in the chain.
    exp_python "$ROOT/scripts/experiments/faultmodels.py" check "$dir" "$prefix" \
        "${NODE_URLS[0]}" "${NODE_URLS[3]}"
    net_down
}

for s in "${scenarios[@]}"; do run "$s"; done
exp_python "$ROOT/scripts/experiments/faultmodels.py" report "$OUT" "${scenarios[@]}" |
    tee "$OUT/summary.txt"
exp_log "wrote $OUT/faultmodels.csv and $OUT/faultmodels.png"
exp_done
