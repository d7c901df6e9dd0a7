#!/usr/bin/env bash
# Experiment 1: throughput and latency against difficulty. For each difficulty, a fresh
# 4-node loopback network (--confirmations 1, every node mining while writes wait) under
# `kvchain bench` with 1,000 writes in flight spread over the nodes, each waiting until
# it is confirmed. Records confirmed writes per second, put-to-confirmed latency (p50, p90,
# p99, max), the blocks mined, their interval and size, and the network's hashrate as the
# nodes report it; the block capacity (4,096 txs per block / interval) is drawn beside.
#
# Usage: scripts/experiments/difficulty.sh [--quick | --smoke] [--out DIR]
#   full: difficulties 12 to 30 (a block every ~1 ms to tens of seconds), under 15 min
#   --quick: 12, 20, 26 (under 3 min); --smoke: 12 and 14, a few seconds each
# Writes OUT/difficulty.csv, OUT/difficulty.png, OUT/summary.txt and OUT/meta.txt.
set -euo pipefail
EXP=difficulty
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"
ME=scripts/experiments/difficulty.sh
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet exp-difficulty 5000
# shellcheck source=scripts/experiments/net.sh
source "$ROOT/scripts/experiments/net.sh"
export KVCHAIN_TESTNET_BIN=$BIN

nodes=4
in_flight=1000
case $MODE in
    full) difficulties=(12 16 20 22 24 26 28 30) min_window=20 max_window=150 warmup=5 ;;
    quick) difficulties=(12 20 26) min_window=15 max_window=40 warmup=3 ;;
    smoke) difficulties=(12 14) min_window=4 max_window=4 warmup=1 in_flight=200 ;;
esac

# One core's hashrate, for the expected block interval and the measuring window.
core_rate=$("$BIN" hashrate --threads 1 --seconds 1 | awk '/^hashrate:/ { print $2 }')
is_uint "$core_rate" || exp_die "kvchain hashrate printed no rate"
cores=$(nproc)
exp_log "one core mines $core_rate H/s; the $nodes nodes share $cores cores"

raw=$TMP/runs.jsonl
: >"$raw"
for d in "${difficulties[@]}"; do
    # Blocks expected from all cores mining at once; the window holds about 8 of them.
    expected=$(awk -v d="$d" -v r="$core_rate" -v c="$cores" -v n="$nodes" \
        'BEGIN { m = (c < n ? c : n); printf "%.6f", 2 ^ d / (r * m) }')
    window=$(awk -v e="$expected" -v lo="$min_window" -v hi="$max_window" \
        'BEGIN { w = 8 * e; w = (w < lo ? lo : w); w = (w > hi ? hi : w); printf "%.0f", w }')
    timeout=$(awk -v e="$expected" 'BEGIN { t = 10 * e; printf "%.0f", (t < 60 ? 60 : t) }')
    exp_log "difficulty $d: expected block every $expected s, measuring ${window} s"
    net_up "$nodes" "$d" --confirmations 1 || exp_die "the network at difficulty $d did not form"

    # The nodes' own hashrate figures, sampled every second while the load runs.
    rates=$TMP/rates-$d.txt
    (
        for ((s = 0; s < warmup + window + timeout; s++)); do
            sum=0
            for ((i = 1; i <= nodes; i++)); do
                r=$(net_status "$i" hashrate)
                is_uint "$r" && sum=$((sum + r))
            done
            echo "$sum"
            sleep 1
        done
    ) >"$rates" &
    sampler=$!
    report=$("$BIN" bench "${BENCH_NODES[@]}" --in-flight "$in_flight" --wait confirmed \
        --seconds "$window" --warmup "$warmup" --timeout "$timeout" --json) ||
        exp_die "kvchain bench failed at difficulty $d"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    # The busiest half of the samples: the load's steady state, not its edges.
    hashrate=$(sort -n "$rates" | awk '{ v[NR] = $1 } END {
        n = 0; s = 0; for (i = int(NR / 2) + 1; i <= NR; i++) { s += v[i]; n++ }
        printf "%.0f", (n ? s / n : 0) }')
    printf '{"difficulty":%s,"expected_interval":%s,"hashrate":%s,"in_flight":%s,"report":%s}\n' \
        "$d" "$expected" "$hashrate" "$in_flight" "$report" >>"$raw"
    net_down
done

exp_python "$ROOT/scripts/experiments/difficulty.py" "$raw" "$OUT" | tee "$OUT/summary.txt"
exp_log "wrote $OUT/difficulty.csv and $OUT/difficulty.png"
exp_done
