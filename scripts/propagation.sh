#!/usr/bin/env bash
# Measures block propagation latency across a 4-node loopback network: node 1 mines,
# nodes 2-4 only listen; for each block, the time from node 1's "mined block" log line to
# each peer's "accepted block" line. Prints p50/p99 (target: p50 < 20 ms, p99 < 100 ms).
#
# Usage: scripts/propagation.sh [BLOCKS] [DIFFICULTY]   (defaults: 200 blocks, 18 bits)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
blocks=${1:-200}
difficulty=${2:-18}
nodes=4
base=${KVCHAIN_BENCH_PORT:-4600}
run=$(mktemp -d)
bin=target/release/kvchain
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$run"
}
trap cleanup EXIT

cargo build --release --quiet

start() { # index, mining policy, extra args...
  local i=$1 mine=$2; shift 2
  "$bin" node --data-dir "$run/n$i" --network propagation --difficulty "$difficulty" \
    --listen "/ip4/127.0.0.1/tcp/$((base + i))" --no-mdns --mine "$mine" --log info \
    --log-file "$run/n$i.log" "$@" </dev/null >"$run/n$i.out" 2>&1 &
  pids+=("$!")
}

wait_for() { # file, pattern, seconds
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; tail -n 20 "$1" >&2; exit 1
}

start 1 off
wait_for "$run/n1.out" "listening on" 10
addr=$(grep -m1 "listening on" "$run/n1.out" | awk '{print $3}')
for i in $(seq 2 $nodes); do start "$i" off --bootstrap "$addr"; done
for i in $(seq 2 $nodes); do wait_for "$run/n$i.out" "listening on" 10; done
for _ in $(seq 100); do
  peers=$("$bin" attach --data-dir "$run/n1" -c status | awk '/^peers:/ {print $2}')
  [ "${peers:-0}" -ge $((nodes - 1)) ] && break
  sleep 0.1
done
# Let the gossip mesh form (heartbeat 0.5 s) before the first block.
sleep 2
"$bin" attach --data-dir "$run/n1" -c "mine always" >/dev/null
for _ in $(seq 600); do
  h=$("$bin" attach --data-dir "$run/n1" -c status | awk '/^height:/ {print $2}')
  [ "${h:-0}" -ge "$blocks" ] && break
  sleep 0.1
done
"$bin" attach --data-dir "$run/n1" -c "mine off" >/dev/null
# Give the last blocks a moment to arrive before reading the logs.
sleep 1
python3 scripts/propagation.py "$run/n1.log" "$run"/n[2-9].log
