#!/usr/bin/env bash
# speed.sh: experiment 4, add and retrieve speed with their worst cases.
#
# Writes: a 2-node loopback testnet (difficulty 22, 3 confirmations) under `kvchain
# bench` at a moderate open-loop rate, once per wait (none = journaled, included,
# confirmed); every write's latency goes into the distributions.
# Reads: chains built in-process by the read_speed example (examples/read_speed/) at
# difficulty 1, in three series: growing key counts (4,096 writes a block), one chain
# with hot keys of 10, 1,000 and 100,000 versions, and a fixed key count spread over more
# and more blocks (the chain length). Each chain is opened in-process (replay timed,
# then Store::retrieve / retrieve_all per call) and served by a real `kvchain node`
# (start-up timed, then GET /kvs/<key> and /kvs/<key>/history per request).
#
# Usage: scripts/experiments/speed.sh [--quick | --smoke] [--out DIR]
# Writes OUT/speed.csv (read latencies), OUT/speed_writes.csv, OUT/speed_startup.csv,
# OUT/speed.png and OUT/meta.txt. Ports: testnet p2p 6001-6002, HTTP 6101-6102; the
# reading node p2p 6050, HTTP 6150.
set -euo pipefail
EXP=speed
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"
ME=scripts/experiments/speed.sh
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet speed 6000 # TMP, NET, wait_for; nodes down and TMP removed on exit

case $MODE in
    full)
        keys_series=(1000 10000 100000 1000000) versions=10,1000,100000
        len_keys=100000 per_blocks=(4096 100 10 1) reads=20000 http_reads=3000 during=10
        rate=50 connections=200 seconds=20 warmup=5
        ;;
    quick)
        keys_series=(1000 10000 100000) versions=10,1000,100000
        len_keys=10000 per_blocks=(4096 100 1) reads=5000 http_reads=1000 during=4
        rate=50 connections=200 seconds=8 warmup=2
        ;;
    smoke)
        keys_series=(100 1000) versions=10,100,1000
        len_keys=300 per_blocks=(300 1) reads=300 http_reads=100 during=1
        rate=20 connections=40 seconds=2 warmup=1
        ;;
esac
difficulty=22 confirmations=3 read_difficulty=1

exp_log "building the read_speed example"
(cd "$ROOT" && cargo build --release --quiet --example read_speed) || exp_die "cargo build failed"
READER=$ROOT/target/release/examples/read_speed
reads_csv=$OUT/speed.csv startup_csv=$OUT/speed_startup.csv writes_csv=$OUT/speed_writes.csv
rm -f "$reads_csv" "$startup_csv" "$writes_csv"
samples=$TMP/read_samples.csv
reader_pid=

# Stops the reading node (if any) by its pid, waiting at most 20 s for it to exit.
stop_reader() {
    [[ -n $reader_pid ]] || return 0
    kill -TERM "$reader_pid" 2>/dev/null || true
    wait_for 20 "the reading node to exit" gone "$reader_pid" || kill -KILL "$reader_pid" 2>/dev/null || true
    wait "$reader_pid" 2>/dev/null || true
    reader_pid=
}
gone() { ! kill -0 "$1" 2>/dev/null; }
trap 'stop_reader; private_testnet_down' EXIT

# ---- writes -------------------------------------------------------------------------
exp_log "writes: 2 nodes, difficulty $difficulty, $rate writes/s on $connections connections"
"$NET" up 2 --difficulty "$difficulty" --http -- \
    --confirmations "$confirmations" --log warn >/dev/null
field() { json_get "$2" <"$KVCHAIN_TESTNET_DIR/node$1.json"; }
meshed() {
    local peers
    peers=$("$NET" send "$1" "status --json" | json_get peers)
    is_uint "$peers" && ((peers >= 1))
}
urls=()
for i in 1 2; do
    wait_for 30 "node $i to see the other" meshed "$i" || exp_die "the testnet did not mesh"
    urls+=(--node "$(field "$i" http)")
done
sleep 2 # the gossip mesh forms (heartbeat 0.5 s)
for wait in none included confirmed; do
    exp_log "writes: --wait $wait, $seconds s after $warmup s warm-up"
    timeout $((seconds + warmup + 120)) "$BIN" bench "${urls[@]}" --rate "$rate" \
        --connections "$connections" --wait "$wait" --seconds "$seconds" --warmup "$warmup" \
        --timeout 60 --json --samples "$TMP/writes-$wait.csv" >"$TMP/writes-$wait.json" ||
        exp_die "bench --wait $wait failed"
done
"$NET" down >/dev/null
exp_python "$ROOT/scripts/experiments/speed_plot.py" writes "$TMP" "$warmup" \
    "$difficulty" "$confirmations" >"$writes_csv"

# ---- reads --------------------------------------------------------------------------
# read_chain SERIES KEYS PER_BLOCK [VERSIONS]: builds the chain, serves it by a kvchain
# node and reads it over HTTP, then reads it in-process (the keys series also while new
# blocks fold in); removes it afterwards.
read_chain() {
    local series=$1 keys=$2 per_block=$3 hot=${4:-} dir=$TMP/chain started url blocks=0
    local shape=(--keys "$keys" --series "$series" --network speed --difficulty "$read_difficulty")
    [[ -z $hot ]] || shape+=(--versions "$hot")
    local out=(--csv "$reads_csv" --startup-csv "$startup_csv" --samples "$samples")
    exp_log "reads: $series, $keys keys${hot:+ + hot keys of $hot versions}, $per_block writes a block"
    rm -rf "$dir"
    timeout 900 "$READER" build --dir "$dir" --per-block "$per_block" --startup-csv "$startup_csv" "${shape[@]}"
    url=http://127.0.0.1:6150
    started=$(date +%s.%N)
    "$BIN" node --data-dir "$dir" --network speed --difficulty "$read_difficulty" --mine off \
        --listen /ip4/127.0.0.1/tcp/6050 --no-mdns --http 127.0.0.1:6150 --log warn \
        --log-file "$TMP/reader.log" </dev/null >"$TMP/reader.out" 2>&1 &
    reader_pid=$!
    timeout 900 "$READER" http --url "$url" --pid "$reader_pid" --started "$started" --ready-timeout 300 \
        --log "$dir/blocks.log" --reads "$http_reads" "${shape[@]}" "${out[@]}" ||
        { tail -5 "$TMP/reader.out" "$TMP/reader.log" >&2 || true; exp_die "HTTP reads failed"; }
    stop_reader
    # In-process last: the blocks it adds while reading go into this chain's log.
    [[ $series != keys ]] || blocks=$during
    timeout 900 "$READER" read --dir "$dir" --reads "$reads" --during-blocks "$blocks" "${shape[@]}" "${out[@]}"
    rm -rf "$dir"
}

for keys in "${keys_series[@]}"; do read_chain keys "$keys" 4096; done
read_chain versions 1000 4096 "$versions"
for per_block in "${per_blocks[@]}"; do read_chain length "$len_keys" "$per_block"; done

exp_python "$ROOT/scripts/experiments/speed_plot.py" plot "$OUT" "$TMP" | tee "$OUT/summary.txt"
exp_log "done: $OUT/speed.png, $reads_csv, $writes_csv, $startup_csv"
exp_done
