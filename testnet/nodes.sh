# nodes.sh: the nodes of a run dir: its state file, starting a node and waiting until it
# is up, asking it for its state, stopping them all. Sourced by testnet.sh after lib.sh.
#
# What is known of a running node comes from the node, never from its human output: the
# node.json it writes in its data dir once it listens (pid, peer id, p2p addresses, HTTP
# URL) and `kvchain attach -c "status --json"`. The run dir holds testnet.state (mode=,
# nodes=, bin=, network=, difficulty= lines) and, for node I: nodeI/ (its data dir),
# nodeI.args (its command line, an argument a line, which restart reuses), nodeI.pid,
# nodeI.json (its node.json as of its last start), nodeI.out, nodeI.log and, with --lan,
# nodeI.netns; with --lan, namespaces lists the namespaces made (see lan.sh).
# shellcheck shell=bash disable=SC2034 # S_MODE is used by testnet.sh

S_MODE="" S_NODES=0 S_BIN="" # read from the state file by load_state

node_pid() { cat "$RUN/node$1.pid" 2>/dev/null || true; }
node_running() { node_process "$1" "$(node_pid "$1")"; }
# node_info I KEY: KEY of node I's node.json as of its last start (see json_get).
node_info() { [[ ! -f $RUN/node$1.json ]] || json_get "$2" <"$RUN/node$1.json"; }

# attach I SECONDS ARGS...: `kvchain attach` to node I, with a time limit.
attach() {
    local i=$1 limit=$2
    shift 2
    timeout "$limit" "$S_BIN" attach --data-dir "$RUN/node$i" "$@"
}

# node_status I KEY: KEY of node I's `status --json`, empty if it does not answer.
node_status() {
    local out
    out=$(attach "$1" 5 -c status --json 2>/dev/null) || return 0
    json_get "$2" <<<"$out"
}

load_state() {
    [[ -f $STATE ]] || die "no testnet is up in $RUN (start one with: $ME up 3)"
    local key value
    while IFS='=' read -r key value; do
        case $key in
            mode) S_MODE=$value ;;
            nodes) S_NODES=$value ;;
            bin) S_BIN=$value ;;
        esac
    done <"$STATE"
    is_uint "$S_NODES" || die "$STATE is damaged (nodes=$S_NODES)"
}

# Checks that $1 names a node of the running testnet.
check_index() {
    is_uint "${1:-}" || die "expected a node number, got '${1:-}'"
    ((10#$1 >= 1 && 10#$1 <= S_NODES)) || die "no node $1 (nodes are 1..$S_NODES)"
}

show_tail() {
    local f
    for f in "$RUN/node$1.out" "$RUN/node$1.log"; do
        warn "--- $f (last 20 lines) ---"
        tail -n 20 "$f" >&2 2>/dev/null || true
    done
}

# Starts node I from its saved arguments (in its namespace, if any) in a process group of
# its own, so that a Ctrl-C at this terminal does not reach it, and records its pid.
# Not in a session of its own (setsid): Linux gives each session an equal share of a busy
# CPU (autogroup), so every node's miner, though niced, would then compete on equal terms
# with the other nodes' request handling. In one session, as on machines of their own,
# the miners take only what the nodes leave.
start_node() {
    local i=$1 ns cmd=()
    mapfile -t cmd <"$RUN/node$i.args"
    cmd=("$S_BIN" "${cmd[@]}")
    ns=$(lan_node_ns "$i")
    [[ -z $ns ]] || cmd=(ip netns exec "$ns" "${cmd[@]}")
    set -m # job control: a background job gets a process group of its own
    "${cmd[@]}" </dev/null >>"$RUN/node$i.out" 2>&1 &
    set +m
    echo "$!" >"$RUN/node$i.pid"
}

# For wait_for: 0 once node I's node.json names a live node-I process; 2 if the process
# start_node started is gone (a node.json left by a killed run names a dead pid).
node_started() {
    local file="$RUN/node$1/node.json" pid=""
    [[ ! -f $file ]] || pid=$(json_get pid 2>/dev/null <"$file")
    node_process "$1" "$pid" && return 0
    alive "$(node_pid "$1")" && return 1
    warn "node $1 exited while starting"
    return 2
}

# Waits until node I is up; then keeps its node.json and takes its pid from there.
wait_ready() {
    if ! wait_for "$START_TIMEOUT" "node $1 to write its node.json" node_started "$1"; then
        show_tail "$1"
        return 1
    fi
    cp "$RUN/node$1/node.json" "$RUN/node$1.json"
    node_info "$1" pid >"$RUN/node$1.pid"
}

# For wait_for: 0 once every node has a peer, 2 if one is not running.
all_have_peers() {
    local i peers
    for ((i = 1; i <= S_NODES; i++)); do
        node_running "$i" || return 2
        peers=$(node_status "$i" peers)
        is_uint "$peers" && ((peers >= 1)) || return 1
    done
}

# For wait_for: 0 once none of nodes I... runs.
none_running() {
    local i
    for i in "$@"; do
        ! node_running "$i" || return 1
    done
}

# Refuses node arguments that would fight those testnet.sh sets itself.
check_node_args() {
    local a
    for a in "$@"; do
        case $a in
            --data-dir* | --log-file* | --network* | --difficulty* | --listen* | --bootstrap* | \
                --no-mdns | --http | --http=*) die "up: $ME sets $a itself (see: $ME help)" ;;
            *$'\n'*) die "up: a node argument holds a newline" ;;
        esac
    done
}

# node_ports I: the loopback ports node I listens on (p2p and HTTP), from its arguments.
node_ports() {
    local arg prev="" port
    while IFS= read -r arg; do
        port=${arg##*[:/]}
        if [[ $prev == --listen || $prev == --http ]] && is_uint "$port" && ((port > 0)); then
            echo "$port"
        fi
        prev=$arg
    done <"$RUN/node$1.args"
}

# For wait_for: 0 once no loopback port of nodes I... is listening. A dead node's
# listening socket can outlive its last thread by a moment, and the next network on the
# same ports would find them taken.
ports_closed() {
    local i port
    [[ $S_MODE == loopback ]] || return 0
    for i in "$@"; do
        for port in $(node_ports "$i"); do
            ! port_in_use "$port" || return 1
        done
    done
}

# check_ports N HTTP: fails if a loopback port of N nodes (and of their HTTP APIs if HTTP
# is 1) is taken. libp2p listens with SO_REUSEPORT: a taken port would be shared, not refused.
check_ports() {
    local i
    for ((i = 1; i <= $1; i++)); do
        if port_in_use $((PORT_BASE + i)); then
            die "port $((PORT_BASE + i)) (node $i) is in use; pick another base with KVCHAIN_TESTNET_PORT=..."
        fi
        if (($2 && HTTP_BASE > 0)) && port_in_use $((HTTP_BASE + i)); then
            die "port $((HTTP_BASE + i)) (node $i's HTTP) is in use; pick another base with KVCHAIN_TESTNET_HTTP_PORT=..."
        fi
    done
}

build() {
    if [[ -n ${KVCHAIN_TESTNET_BIN:-} ]]; then
        [[ -x $KVCHAIN_TESTNET_BIN ]] || die "KVCHAIN_TESTNET_BIN=$KVCHAIN_TESTNET_BIN is not an executable"
        S_BIN=$(cd "$(dirname "$KVCHAIN_TESTNET_BIN")" && pwd)/$(basename "$KVCHAIN_TESTNET_BIN")
        return
    fi
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target="$ROOT/$target"
    S_BIN="$target/release/kvchain"
    if command -v cargo >/dev/null; then
        say "building kvchain (cargo build --release)..."
        # Under `cargo test` the environment holds the test's CARGO_PKG_*, CARGO_MANIFEST_DIR...;
        # ring's build script reruns when they change, so builds from a test and by hand
        # would rebuild in turn (minutes each) unless they go.
        (cd "$ROOT" && unset "${!CARGO_PKG_@}" "${!CARGO_MANIFEST_@}" "${!CARGO_BIN_@}" \
            CARGO_CRATE_NAME CARGO_PRIMARY_PACKAGE CARGO_TARGET_TMPDIR CARGO_RUSTC_CURRENT_DIR &&
            cargo build --release --quiet) || die "cargo build --release failed"
    elif [[ -x $S_BIN ]]; then
        warn "cargo is not on PATH (sudo resets PATH); using the existing $S_BIN"
    else
        die "cargo is not on PATH and $S_BIN does not exist: run cargo build --release first"
    fi
    [[ -x $S_BIN ]] || die "the build left no binary at $S_BIN"
}

# Stops every node of the run dir (SIGTERM, SIGKILL after 10 s), deletes the namespaces
# and removes the run dir. Fails, keeping the run dir, if anything is left.
teardown() {
    local f i nodes=() all=()
    for f in "$RUN"/node*.pid; do
        i=${f##*/node} && i=${i%.pid}
        [[ ! -e $f ]] || all+=("$i")
        if [[ -e $f ]] && node_running "$i"; then
            kill -TERM "$(node_pid "$i")" 2>/dev/null || true
            nodes+=("$i")
        fi
    done
    if ! wait_for 10 "the nodes to stop on SIGTERM" none_running "${nodes[@]}"; then
        for i in "${nodes[@]}"; do
            ! node_running "$i" || kill -KILL "$(node_pid "$i")" 2>/dev/null || true
        done
        wait_for 5 "the nodes to die on SIGKILL" none_running "${nodes[@]}" || return 1
    fi
    wait_for 10 "the nodes' ports to close" ports_closed "${all[@]}" || return 1
    lan_down || return 1
    rm -rf -- "$RUN"
}

