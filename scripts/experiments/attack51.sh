#!/usr/bin/env bash
# attack51.sh: experiment 6, the 51% attack, with real nodes on loopback. Two honest nodes
# (node 1, node 2: `--mine always --max-hashrate HH` each) and an attacker (node 3:
# `--attacker --mine off --max-hashrate HA`, HA chosen so that it has a share q of the
# total hashrate). See docs/experiments/attack51/NOTES.md.
#
# 1. Demo (q = 0.65): node 1 writes four versions of demo-key; the attacker rewrites the
#    second one (`attack start demo-key HEIGHT forged-by-attacker`). The key's history on
#    node 2 before and after goes to OUT/history_before.txt and OUT/history_after.txt.
# 2. Success rate: for each q and z, trials in which the attacker arms itself
#    (`attack start KEY next ...`), node 1 writes KEY (the victim), the attacker forks from
#    the parent of the victim's block as soon as it is included, waits until the honest
#    chain holds it z deep, and publishes its branch once it is heavier. A trial succeeds
#    when node 2's history shows the attacker's value; it fails when the private branch
#    falls G blocks behind (G = z + the smallest b with (q/p)^b < 2%; none for q >= 0.5)
#    or after a time bound, so the measured rate is a lower bound. OUT/trials.csv holds
#    every trial, OUT/attack51.csv the rates with Nakamoto's formula, OUT/attack51.png the
#    plot (scripts/experiments/attack51_plot.py).
#
# Usage: scripts/experiments/attack51.sh [--quick | --smoke] [--out DIR]
#   full: q 0.1..0.6, z 1,2,4, 8 trials each (about 12 min, estimated); --quick: q 0.2,0.4,0.6,
#   z 1,2, 6 trials (under 3 min); --smoke: q 0.3,0.6, z 1, 2 trials (under a minute).
# Ports: p2p 6601-6603, HTTP 6701-6703.
set -euo pipefail
EXP=attack51
# shellcheck source=scripts/experiments/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exp_init "$@"
ME=scripts/experiments/attack51.sh
export KVCHAIN_TESTNET_BIN=$BIN # built by exp_init
# shellcheck source=testnet/private.sh
source "$ROOT/testnet/private.sh"
private_testnet attack51 6600 # and testnet/lib.sh: wait_for, json_get, is_uint

DIFFICULTY=13 # 8,192 hashes a block on average
HH=16384      # each honest node's cap: together a block every 0.25 s
case $MODE in
    full) QS=(0.1 0.2 0.3 0.4 0.5 0.6) ZS=(1 2 4) TRIALS=8 BOUND=10 ;;
    quick) QS=(0.2 0.4 0.6) ZS=(1 2) TRIALS=6 BOUND=10 ;;
    smoke) QS=(0.3 0.6) ZS=(1) TRIALS=2 BOUND=6 ;;
esac
NODE_ARGS=(--mine always --max-hashrate "$HH" --threads 1 --log info --confirmations 1)
RUN=$KVCHAIN_TESTNET_DIR

"$NET" up 3 --difficulty "$DIFFICULTY" --http -- "${NODE_ARGS[@]}" >/dev/null
url() { json_get http <"$RUN/node$1.json"; }
URL1=$(url 1) URL2=$(url 2)
# One console command on node I.
send() { timeout 10 "$BIN" attach --data-dir "$RUN/node$1" -c "$2"; }
status_of() { send "$1" "status --json" | json_get "$2"; }
attack() { send 3 "attack $1"; }
# The attacker's cap for a share q of all hashrate: HA / (HA + 2 HH) = q.
attacker_cap() { awk -v q="$1" -v h="$HH" 'BEGIN { printf "%d", 2 * h * q / (1 - q) + 0.5 }'; }

# Restarts node 3 as the attacker with share $1 and waits until it follows the chain.
make_attacker() {
    local pid cap
    cap=$(attacker_cap "$1")
    pid=$(cat "$RUN/node3.pid")
    kill -TERM "$pid"
    wait_for 20 "node 3 to stop" bash -c "! kill -0 $pid 2>/dev/null" || exp_die "node 3 did not stop"
    # Its own arguments (those before the node arguments given to `up`), then the
    # attacker's.
    [[ -f $RUN/node3.base ]] || head -n "-${#NODE_ARGS[@]}" "$RUN/node3.args" >"$RUN/node3.base"
    cp "$RUN/node3.base" "$RUN/node3.args.new"
    printf '%s\n' --mine off --attacker --max-hashrate "$cap" --threads 1 --log info \
        --confirmations 1 >>"$RUN/node3.args.new"
    mv "$RUN/node3.args.new" "$RUN/node3.args"
    "$NET" restart 3 >/dev/null
    wait_for 30 "the attacker to catch up" caught_up || exp_die "the attacker did not sync"
    exp_log "q = $1: attacker capped at $cap H/s, honest nodes at $HH H/s each"
}
caught_up() {
    local h1 h3 peers
    h1=$(status_of 1 height) h3=$(status_of 3 height) peers=$(status_of 3 peers)
    is_uint "$h1" && is_uint "$h3" && is_uint "$peers" && ((peers >= 1 && h3 + 1 >= h1))
}
attack_state() { attack "status --json" | json_get state; }
attack_over() {
    local s
    s=$(attack_state)
    [[ $s == published || $s == failed || $s == stopped ]]
}
# Whether node $1's history of key $2 holds the value $3.
history_has() { "$BIN" history "$2" --node "$(url "$1")" --json 2>/dev/null | grep -qF "\"value\":\"$3\""; }

# --- 1. The demo --------------------------------------------------------------------
make_attacker 0.65
for v in 1 2 3 4; do
    "$BIN" put demo-key "honest-v$v" --wait included --node "$URL1" >/dev/null
done
wait_for 10 "node 2 to hold every version" history_has 2 demo-key honest-v4 || exp_die "no history"
target=$("$BIN" history demo-key --node "$URL2" --json | tr '{' '\n' | grep -F '"value":"honest-v2"' |
    sed 's/.*"height":\([0-9]*\).*/\1/')
is_uint "$target" || exp_die "no height for honest-v2"
"$BIN" history demo-key --node "$URL2" | tee "$OUT/history_before.txt"
echo "== the attacker (q = 0.65) rewrites the version at height $target"
attack "start demo-key $target forged-by-attacker --confirmations 1 --give-up-after 60"
wait_for 90 "the demo attack to end" attack_over || exp_die "the demo attack did not end"
attack status
wait_for 20 "node 2 to take the attacker's branch" history_has 2 demo-key forged-by-attacker ||
    exp_die "node 2 did not take the rewritten history"
# The victim's orphaned writes go back to the mempools and are mined again at new heights.
wait_for 20 "the orphaned versions to be mined again" bash -c \
    "[[ \$('$BIN' history demo-key --node '$URL2' | grep -c honest-v) -ge 4 ]]" || true
{
    "$BIN" history demo-key --node "$URL2"
    echo "(the version at height $target is now the attacker's; the victim's orphaned writes"
    echo " went back to the mempools and were mined again at new heights)"
} | tee "$OUT/history_after.txt"
penalised=$(for i in 1 2; do send "$i" peers; done | grep -c penalty || true)
echo "honest nodes' peers with penalty points after the attack: $penalised (expected 0)"

# --- 2. Success rate ----------------------------------------------------------------
trials="$OUT/trials.csv"
echo "q,z,trial,success,state,private_blocks,honest_blocks,elapsed_ms,give_up_behind,time_bound_s,attacker_hs,honest_hs" >"$trials"
for q in "${QS[@]}"; do
    make_attacker "$q"
    behind=$(awk -v q="$q" 'BEGIN { if (q >= 0.5) { print 0; exit } b = 1
        while ((q / (1 - q)) ^ b >= 0.02) b++; print b }')
    for z in "${ZS[@]}"; do
        for ((t = 1; t <= TRIALS; t++)); do
            key="t-$q-$z-$t-$RANDOM"
            g=0
            ((behind == 0)) || g=$((z + behind))
            attack "start $key next forged --confirmations $z --give-up-behind $g --give-up-after $BOUND" >/dev/null
            "$BIN" put "$key" victim --node "$URL1" >/dev/null
            # Hashrates while racing (each node reports the last second's), 0 if too short.
            ha=0 hh=0
            deadline=$((SECONDS + BOUND + 30))
            while ! attack_over && ((SECONDS < deadline)); do
                # The last sample once the race has run a full second of the nodes' meter.
                if [[ $(attack "status --json" | json_get elapsed_ms) -gt 1100 ]]; then
                    ha=$(status_of 3 hashrate)
                    hh=$(($(status_of 1 hashrate) + $(status_of 2 hashrate)))
                fi
                sleep 0.1
            done
            line=$(attack "status --json")
            state=$(json_get state <<<"$line")
            [[ $state == published || $state == failed ]] || attack stop >/dev/null
            ok=0
            if [[ $state == published ]] && wait_for 15 "node 2 to take the branch" history_has 2 "$key" forged; then
                ok=1
            fi
            echo "$q,$z,$t,$ok,$state,$(json_get private_blocks <<<"$line"),$(json_get honest_blocks <<<"$line"),$(json_get elapsed_ms <<<"$line"),$g,$BOUND,$ha,$hh" >>"$trials"
            exp_log "q=$q z=$z trial $t: $state ($(json_get reason <<<"$line"))"
        done
    done
done

exp_python "$ROOT/scripts/experiments/attack51_plot.py" "$OUT" | tee "$OUT/summary.txt"
exp_done
