#!/usr/bin/env bash
# Experiment 2: fault resistance. A 5-node loopback network (difficulty 20,
# --confirmations 2) under a steady open-loop load of confirmed writes spread over all
# nodes; one node is killed (SIGKILL), then a second, then a third, and then all three
# are restarted. Records every write (when it was due, when and how it was answered) and,
# four times a second, each node's height and tip; the plot shows write availability,
# latency and chain convergence over time, with each fault marked.
#
# Usage: scripts/experiments/faults.sh [--quick | --smoke] [--out DIR]
#   full: 15 s between faults, 300 writes/s (about 2 minutes); --quick: 8 s, 200/s;
#   --smoke: 2 s, 100/s
# Writes OUT/faults.csv (per second), OUT/faults_writes.csv (every write),
# OUT/faults_nodes.csv (the status samples), OUT/faults_events.csv, OUT/faults.png,
# OUT/summary.txt and OUT/meta.txt.
set -euo pipefail
EXP=faults
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"
ME=scripts/experiments/faults.sh
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet exp-faults 5300
# shellcheck source=scripts/experiments/net.sh
source "$ROOT/scripts/experiments/net.sh"
export KVCHAIN_TESTNET_BIN=$BIN

nodes=5
difficulty=20
case $MODE in
    full) phase=15 rate=300 ;;
    quick) phase=8 rate=200 ;;
    smoke) phase=2 rate=100 NET_SETTLE=0.5 ;;
esac
# Kill 5, then 4, then 3 (node 1 stays up: the load generator reads the blocks from
# it at the end), restart all three, then let the network settle for two phases.
total=$((phase * 6))

net_up "$nodes" "$difficulty" --confirmations 2 || exp_die "the network did not form"
events=$OUT/faults_events.csv
echo "t_unix,event,node" >"$events"
event() { echo "$(date +%s.%N),$1,$2" >>"$events"; }

net_sample "$OUT/faults_nodes.csv" $((total + 120))
prefix=faults-$(date +%s)
"$BIN" bench "${BENCH_NODES[@]}" --rate "$rate" --connections 250 --wait confirmed \
    --seconds "$total" --warmup 0 --timeout 60 --samples "$OUT/faults_writes.csv" \
    --prefix "$prefix" --json >"$TMP/bench.json" &
bench=$!
event start 0

# Sleeps until $1 seconds after the load started (bounded by the schedule itself).
started=$SECONDS
at() { local wait=$((started + $1 - SECONDS)); ((wait <= 0)) || sleep "$wait"; }
at "$phase"
"$NET" kill 5 >/dev/null && event kill 5
at $((2 * phase))
"$NET" kill 4 >/dev/null && event kill 4
at $((3 * phase))
"$NET" kill 3 >/dev/null && event kill 3
at $((4 * phase))
for i in 3 4 5; do "$NET" restart "$i" >/dev/null && event restart "$i"; done

# From the end of the load (the bench goes on to collect its last answers), sample on
# until every node has the same tip again (bounded), so convergence shows.
at "$total"
wait_for 60 "every node to agree on the tip" net_agree "$nodes" "$nodes" && event converged 0
wait "$bench" || exp_die "kvchain bench failed"
event end 0
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true

# Every write a node confirmed is read back from node 1 and from node 5 (killed and restarted).
exp_python "$ROOT/scripts/experiments/faults.py" "$OUT" "$TMP/bench.json" "$prefix" \
    "${NODE_URLS[0]}" "${NODE_URLS[4]}" | tee "$OUT/summary.txt"
exp_log "wrote $OUT/faults.csv and $OUT/faults.png"
exp_done
