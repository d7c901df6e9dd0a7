#!/usr/bin/env bash
# Confirmed-write throughput of a 4-node loopback network (testnet/testnet.sh in a temp
# run dir, every node with an HTTP API) under `kvchain bench`, the load generator: writes
# spread over all nodes, each waiting until it is confirmed. Prints the bench report
# (`confirmed puts/s: N`, put-to-confirmed latency p50/p90/p99, blocks mined, txs per
# block), the CPU each node used, the host's (busy, idle, and stolen by the hypervisor),
# how each node's counters grew (scripts/node_counters.py: signatures checked, blocks
# accepted, height gained, reorgs), the CPU by thread, as a share of a core and per write
# (scripts/thread_cpu.py), and how fast blocks spread and how often they raced
# (scripts/block_races.py, from the nodes' logs). A measurement,
# not a test.
#
# Usage: scripts/throughput.sh [-- BENCH-ARGS...]
#   BENCH-ARGS go to `kvchain bench` (default: --in-flight 256 --seconds 20), e.g.
#   -- --rate 2500 --seconds 30   for an open-loop load at 2,500 writes per second.
# Environment: NODES (default 4), DIFFICULTY (default 16), CONFIRMATIONS (default 1),
#   THREADS (mining threads per node, default 1), KVCHAIN_BENCH_PORT (p2p port base,
#   default 4700: ports 4701.., HTTP 4801..), NODE_ARGS (more flags for every node),
#   NET_LOG (the nodes' --log filter; default: warnings, and the node task's info lines),
#   POLL_STATUS (seconds: ask node 1's GET /status this often during the run, as a
#   dashboard would, and print how long the answers took; leave the node a free
#   connection, e.g. --in-flight 250 against its 256).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nodes=${NODES:-4}
difficulty=${DIFFICULTY:-16}
confirmations=${CONFIRMATIONS:-1}
threads=${THREADS:-1}
bench_args=(--in-flight 256 --seconds 20)
if [[ ${1:-} == -- ]]; then
    shift
    bench_args=("$@")
elif [[ $# -gt 0 ]]; then
    echo "usage: scripts/throughput.sh [-- BENCH-ARGS...]" >&2
    exit 2
fi
for n in "$nodes" "$difficulty" "$confirmations" "$threads"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "error: NODES, DIFFICULTY, CONFIRMATIONS, THREADS are integers" >&2; exit 2; }
done

ME=scripts/throughput.sh
# shellcheck source=testnet/private.sh
source testnet/private.sh
private_testnet throughput "${KVCHAIN_BENCH_PORT:-4700}" # and lib.sh: wait_for, json_get
# shellcheck source=scripts/experiments/net.sh
source scripts/experiments/net.sh # net_up, cpu_secs
bin=${KVCHAIN_TESTNET_BIN:-target/release/kvchain}
# Each block mined and accepted is logged at info level, for scripts/block_races.py.
export NET_LOG=${NET_LOG:-warn,kvchain::node::task=info}
# shellcheck disable=SC2086 # NODE_ARGS is a list of flags
net_up "$nodes" "$difficulty" --confirmations "$confirmations" --threads "$threads" ${NODE_ARGS:-} ||
    exit 1
pids=("${NODE_PIDS[@]}")

counters=$KVCHAIN_TESTNET_DIR/counters-before.json
python3 scripts/node_counters.py save "$counters" "${NODE_URLS[@]}"
thread_cpu=$KVCHAIN_TESTNET_DIR/threads-before.json
python3 scripts/thread_cpu.py save "$thread_cpu" "${pids[@]}"
before=()
for pid in "${pids[@]}"; do before+=("$(cpu_secs "$pid")"); done
read -ra host_before < <(head -1 /proc/stat)
start=$(date +%s.%N)

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), commit $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "== $nodes nodes on loopback, difficulty $difficulty, --confirmations $confirmations, --threads $threads"
echo "== run dir: $KVCHAIN_TESTNET_DIR"
echo "== $bin bench ${bench_args[*]}"
report=$KVCHAIN_TESTNET_DIR/bench.txt
poll_pid=
if [[ -n ${POLL_STATUS:-} ]]; then
    [[ $POLL_STATUS =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "error: POLL_STATUS is a number of seconds" >&2; exit 2; }
    command -v curl >/dev/null || { echo "error: POLL_STATUS needs curl" >&2; exit 2; }
    polls=$KVCHAIN_TESTNET_DIR/status-polls.txt
    # Stopped by its pid once the bench returns, and ends by itself if this script
    # exits first (a failed bench under set -e).
    while kill -0 $$ 2>/dev/null; do
        curl -s -o /dev/null -w '%{time_total}\n' --max-time 5 "${NODE_URLS[0]}/status" >>"$polls" || true
        sleep "$POLL_STATUS"
    done &
    poll_pid=$!
fi
"$bin" bench "${BENCH_NODES[@]}" "${bench_args[@]}" | tee "$report"
if [[ -n $poll_pid ]]; then
    kill "$poll_pid" 2>/dev/null || true
    wait "$poll_pid" 2>/dev/null || true
    sort -n "$polls" | awk '{ t[NR] = $1 * 1000 } END { if (NR) printf "GET /status every %ss: %d answers, p50 %.1f ms, max %.1f ms\n", ENVIRON["POLL_STATUS"], NR, t[int((NR + 1) / 2)], t[NR] }'
fi

elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
line="cpu per node (% of one core, over ${elapsed%.*} s):"
for ((i = 0; i < nodes; i++)); do
    used=$(awk -v a="${before[$i]}" -v b="$(cpu_secs "${pids[$i]}")" -v t="$elapsed" \
        'BEGIN { printf "%.0f", (b - a) / t * 100 }')
    line+=" node$((i + 1)) $used%"
done
echo "$line"
# The host's CPU over the run (warm-up included). In a VM, time the hypervisor gave to
# others ("steal") is time the nodes wanted and did not get: a figure taken while it is
# high understates the code. "busy" counts the miners, which take whatever is idle.
read -ra host_after < <(head -1 /proc/stat)
echo "${host_before[*]:1:8} ${host_after[*]:1:8}" | awk '{
    for (i = 1; i <= 8; i++) { d[i] = $(i + 8) - $i; t += d[i] }
    if (t > 0) printf "host cpu (all cores, %% of their time): busy %.0f%%, idle %.0f%%, steal %.1f%%\n",
        (t - d[4] - d[5] - d[8]) / t * 100, (d[4] + d[5]) / t * 100, d[8] / t * 100 }'
python3 scripts/node_counters.py show "$counters" "${NODE_URLS[@]}"
# Every write answered, warm-up included (as the CPU times): "writes: confirmed N, ...".
writes=$(sed -n 's/^writes: //p' "$report" | tr ',' '\n' | awk '{ n += $NF } END { print n + 0 }')
python3 scripts/thread_cpu.py show "$thread_cpu" "$elapsed" "$writes" "${pids[@]}"
python3 scripts/block_races.py "$KVCHAIN_TESTNET_DIR"/node*.log
