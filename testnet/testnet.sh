#!/usr/bin/env bash
# testnet.sh: run a network of several kvchain nodes on this machine, either as processes on
# 127.0.0.1 (nodes join through node 1) or, with --lan, on a virtual LAN of network
# namespaces where they find each other by mDNS alone. `testnet/testnet.sh help` for usage.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ME="testnet/testnet.sh"

RUN=${KVCHAIN_TESTNET_DIR:-$SCRIPT_DIR/.run}
[[ $RUN == /* ]] || RUN="$PWD/$RUN"
while [[ $RUN == */ && $RUN != / ]]; do RUN=${RUN%/}; done
STATE="$RUN/testnet.state"
PORT_BASE=${KVCHAIN_TESTNET_PORT:-4100}
NS_PREFIX=${KVCHAIN_TESTNET_NS:-kvtnet}
NETWORK=${KVCHAIN_TESTNET_NETWORK:-testnet}
PEER_TIMEOUT=${KVCHAIN_TESTNET_TIMEOUT:-30}
SEND_TIMEOUT=${KVCHAIN_TESTNET_SEND_TIMEOUT:-30}
LAN_SUBNET=10.77.0

# Filled from the state file by load_state.
S_MODE="" S_NODES=0 S_BIN=""

usage() {
    cat <<EOF
usage: $ME <command> [args]

  up N [--difficulty D] [--network NAME] [--lan]
                       build the release binary and start N nodes (difficulty 16 by default)
                       default: on 127.0.0.1, ports \$KVCHAIN_TESTNET_PORT+I (base 4100),
                       no mDNS, nodes 2..N bootstrap from node 1
                       --lan: one network namespace per node on a virtual bridge, addresses
                       $LAN_SUBNET.I/24, no bootstrap: nodes meet by mDNS alone (needs root)
  demo [N] [up options]
                       up N (default 3), a console on node 1, down when it exits
  send I <command>     run one console command on node I (e.g. send 2 get color)
  console I            interactive console on node I
  logs I [-f]          last 50 lines of node I's log (-f: follow)
  status               one line per node: pid, peer id, height, tip, peers
  kill I               SIGKILL node I (fault tests)
  restart I            start node I again with the same data dir and arguments
  down                 stop every node, delete the namespaces, remove the run dir
  help                 this text

environment:
  KVCHAIN_TESTNET_DIR   run dir (default testnet/.run); now $RUN
  KVCHAIN_TESTNET_PORT  port base (default 4100)
  KVCHAIN_TESTNET_NS    namespace name prefix for --lan (default kvtnet)
  KVCHAIN_TESTNET_BIN   use this kvchain binary instead of building one
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() {
    warn "$*"
    exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Whether process $1 exists and is not a zombie.
alive() {
    local pid=$1 stat
    is_uint "$pid" || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    stat=${stat%% *}
    [[ -n $stat && $stat != Z && $stat != X ]]
}

# Whether process $2 is alive and is node $1 of this run dir (its command line names the
# node's data dir), so a recycled pid is never signalled.
node_process() {
    local i=$1 pid=$2
    local cmdline
    alive "$pid" || return 1
    cmdline=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    grep -qxF -- "$RUN/node$i" <<<"$cmdline"
}

# Whether something listens on TCP port $1 of 127.0.0.1. libp2p listens with SO_REUSEPORT,
# so a second node would share a port with a first one rather than fail: check first.
port_in_use() {
    local port=$1
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# Fails if the port node $1 listens on (loopback mode) is taken.
check_port() {
    local port=$((PORT_BASE + $1))
    if port_in_use "$port"; then
        warn "port $port (node $1) is in use; pick another base with KVCHAIN_TESTNET_PORT=..."
        return 1
    fi
}

node_pid() { cat "$RUN/node$1.pid" 2>/dev/null || true; }

node_running() {
    local pid
    pid=$(node_pid "$1")
    [[ -n $pid ]] && node_process "$1" "$pid"
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

need_root() {
    if [[ $(id -u) != 0 ]]; then
        die "$1 needs root: network namespaces, veth pairs and bridges can only be made by root.
  Build first as yourself (cargo build --release), then: sudo $ME $1"
    fi
    command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing: apt-get install iproute2"
}

# attach with a time limit, so no loop can hang on a wedged node.
attach() {
    local i=$1 limit=$2
    shift 2
    timeout "$limit" "$S_BIN" attach --data-dir "$RUN/node$i" "$@"
}

# Prints the value of one line of node I's status ("peers", "height", "tip"), empty if the
# node does not answer.
status_field() {
    local out
    out=$(attach "$1" 5 -c status 2>/dev/null) || return 0
    awk -v k="$2:" '$1 == k { print $2; exit }' <<<"$out"
}

peer_id() {
    awk '/^peer id: / { id = $3 } END { print id }' "$RUN/node$1.out" 2>/dev/null || true
}

show_tail() {
    local i=$1
    warn "--- node $i output ($RUN/node$i.out, last 15 lines) ---"
    tail -n 15 "$RUN/node$i.out" >&2 2>/dev/null || true
    warn "--- node $i log ($RUN/node$i.log, last 25 lines) ---"
    tail -n 25 "$RUN/node$i.log" >&2 2>/dev/null || true
}

# Starts node I from its saved arguments (and namespace) in its own session, detached from
# this terminal, and records its pid.
start_node() {
    local i=$1 ns="" args=() cmd=()
    mapfile -t args <"$RUN/node$i.args"
    [[ -f $RUN/node$i.netns ]] && ns=$(<"$RUN/node$i.netns")
    cmd=("$S_BIN" "${args[@]}")
    if [[ -n $ns ]]; then
        cmd=(ip netns exec "$ns" "${cmd[@]}")
    fi
    if command -v setsid >/dev/null; then
        cmd=(setsid "${cmd[@]}")
    fi
    "${cmd[@]}" </dev/null >>"$RUN/node$i.out" 2>&1 &
    echo "$!" >"$RUN/node$i.pid"
}

# Waits until node I prints its listen addresses; prints the first 127.0.0.1 one.
wait_listening() {
    local i=$1 deadline=$((SECONDS + 20)) pid out addr
    pid=$(node_pid "$i")
    while :; do
        # One snapshot of the output, read before checking whether the node is alive.
        out=$(<"$RUN/node$i.out")
        addr=$(awk '/^listening on \/ip4\/127\.0\.0\.1\// { print $3; exit }' <<<"$out")
        if [[ -n $addr ]]; then
            printf '%s\n' "$addr"
            return 0
        fi
        if grep -q '^console: ' <<<"$out"; then
            warn "node $i started but is not listening on 127.0.0.1 (port $((PORT_BASE + i)) in use? try KVCHAIN_TESTNET_PORT=...)"
            show_tail "$i"
            return 1
        fi
        if ! alive "$pid"; then
            if grep -q '^error: cannot listen' "$RUN/node$i.out"; then
                warn "node $i cannot listen on port $((PORT_BASE + i)) (in use? pick another base with KVCHAIN_TESTNET_PORT=...)"
            else
                warn "node $i exited before listening"
            fi
            show_tail "$i"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "node $i printed no listen address within 20 s"
            show_tail "$i"
            return 1
        fi
        sleep 0.1
    done
}

# Waits until node I's console answers; then takes its pid from the data dir's lock file
# (the node's own pid, whatever wrapped it).
wait_ready() {
    local i=$1 deadline=$((SECONDS + 30)) pid lock
    pid=$(node_pid "$i")
    until attach "$i" 5 -c status >/dev/null 2>&1; do
        if ! alive "$pid"; then
            warn "node $i exited while starting"
            show_tail "$i"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "node $i's console did not answer within 30 s"
            show_tail "$i"
            return 1
        fi
        sleep 0.1
    done
    lock=$(head -n 1 "$RUN/node$i/LOCK" 2>/dev/null || true)
    if is_uint "$lock" && [[ $lock != "$pid" ]] && node_process "$i" "$lock"; then
        echo "$lock" >"$RUN/node$i.pid"
    fi
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
        (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    elif [[ -x $S_BIN ]]; then
        warn "cargo is not on PATH (sudo resets PATH); using the existing $S_BIN"
    else
        die "cargo is not on PATH and $S_BIN does not exist: run cargo build --release first"
    fi
    [[ -x $S_BIN ]] || die "the build left no binary at $S_BIN"
}

# Whether network namespace $1 exists.
netns_exists() {
    local names
    names=$(ip netns list 2>/dev/null | awk '{ print $1 }')
    grep -qxF -- "$1" <<<"$names"
}

# Creates namespace $1, recording it first so that down deletes it whatever happens next.
make_netns() {
    local ns=$1
    if netns_exists "$ns"; then
        die "network namespace $ns already exists (another testnet? stop it with its own KVCHAIN_TESTNET_DIR, or set KVCHAIN_TESTNET_NS to another prefix)"
    fi
    echo "$ns" >>"$RUN/namespaces"
    ip netns add "$ns"
}

# The virtual LAN: a namespace holding bridge br0, and one namespace per node whose eth0 is
# a veth plugged into the bridge, with address 10.77.0.I/24. Nothing is made in the host's
# own namespace.
make_lan() {
    local n=$1 i br="$NS_PREFIX-br" ns
    make_netns "$br"
    ip -n "$br" link set lo up
    ip -n "$br" link add br0 type bridge mcast_snooping 0
    ip -n "$br" link set br0 up
    for ((i = 1; i <= n; i++)); do
        ns="$NS_PREFIX-n$i"
        make_netns "$ns"
        ip -n "$br" link add "veth$i" type veth peer name eth0 netns "$ns"
        ip -n "$br" link set "veth$i" master br0
        ip -n "$br" link set "veth$i" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$LAN_SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        # mDNS talks to 224.0.0.251:5353: send multicast out of eth0.
        ip -n "$ns" route add 224.0.0.0/4 dev eth0
    done
}

# Stops every node of the run dir (SIGTERM, then SIGKILL), deletes the namespaces it made
# and removes the run dir. Returns non-zero, keeping the run dir, if anything is left.
teardown() {
    local f i pid ns deadline left=() pending=()
    for f in "$RUN"/node*.pid; do
        [[ -e $f ]] || continue
        i=${f##*/node}
        i=${i%.pid}
        pid=$(<"$f")
        if node_process "$i" "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            pending+=("$i:$pid")
        fi
    done
    deadline=$((SECONDS + 10))
    while ((${#pending[@]} > 0)); do
        left=()
        for f in "${pending[@]}"; do
            node_process "${f%%:*}" "${f#*:}" && left+=("$f")
        done
        pending=("${left[@]+"${left[@]}"}")
        ((${#pending[@]} > 0)) || break
        if ((SECONDS >= deadline)); then
            for f in "${pending[@]}"; do
                warn "node ${f%%:*} (pid ${f#*:}) ignored SIGTERM for 10 s; sending SIGKILL"
                kill -KILL "${f#*:}" 2>/dev/null || true
            done
            deadline=$((SECONDS + 5))
            while :; do
                left=()
                for f in "${pending[@]}"; do
                    node_process "${f%%:*}" "${f#*:}" && left+=("$f")
                done
                ((${#left[@]} > 0)) || break
                if ((SECONDS >= deadline)); then
                    warn "cannot stop pids: ${left[*]#*:}; run dir $RUN kept"
                    return 1
                fi
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    if [[ -f $RUN/namespaces ]]; then
        while read -r ns; do
            [[ -n $ns ]] || continue
            netns_exists "$ns" || continue
            # Anything still inside was started by us: end it, or the namespace lingers.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" || {
                warn "cannot delete network namespace $ns; run dir $RUN kept"
                return 1
            }
        done <"$RUN/namespaces"
    fi
    rm -rf -- "$RUN"
}

cmd_up() {
    local n="" difficulty=16 lan=0 i addr args=() deadline peers
    while (($# > 0)); do
        case $1 in
            --difficulty)
                is_uint "${2:-}" || die "--difficulty needs a number of bits"
                difficulty=$2
                shift 2
                ;;
            --network)
                [[ -n ${2:-} ]] || die "--network needs a name"
                NETWORK=$2
                shift 2
                ;;
            --lan)
                lan=1
                shift
                ;;
            *)
                if [[ -n $n ]] || ! is_uint "$1"; then
                    die "up: unexpected argument '$1' (usage: up N [--difficulty D] [--network NAME] [--lan])"
                fi
                n=$((10#$1))
                shift
                ;;
        esac
    done
    [[ -n $n ]] || die "usage: up N [--difficulty D] [--network NAME] [--lan]"
    ((n >= 1 && n <= 100)) || die "up: N must be 1..100"
    if ((lan)); then
        need_root "up $n --lan"
        [[ $NS_PREFIX =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "KVCHAIN_TESTNET_NS must be 1-40 letters, digits, _ . -"
    else
        if ! is_uint "$PORT_BASE" || ((PORT_BASE < 1 || PORT_BASE + n > 65535)); then
            die "KVCHAIN_TESTNET_PORT must be a port number (1..$((65535 - n)))"
        fi
    fi
    [[ $RUN != / ]] || die "refusing to use / as the run dir"
    if [[ -f $STATE ]]; then
        load_state
        local running=0
        for ((i = 1; i <= S_NODES; i++)); do
            node_running "$i" && running=$((running + 1))
        done
        die "a testnet is already set up in $RUN ($S_NODES nodes, $running running): run '$ME down' first"
    fi
    if [[ -d $RUN ]] && [[ -n $(ls -A "$RUN") ]]; then
        die "$RUN is not empty and holds no testnet: set KVCHAIN_TESTNET_DIR to another dir"
    fi

    if ((!lan)); then
        for ((i = 1; i <= n; i++)); do
            check_port "$i" || exit 1
        done
    fi

    build
    mkdir -p "$RUN"
    S_MODE=$([[ $lan == 1 ]] && echo lan || echo loopback)
    S_NODES=$n
    printf 'mode=%s\nnodes=%s\nbin=%s\nnetwork=%s\ndifficulty=%s\n' \
        "$S_MODE" "$n" "$S_BIN" "$NETWORK" "$difficulty" >"$STATE"

    # From here on, a failure (or Ctrl-C) undoes everything this run started.
    UP_DONE=0
    trap 'up_failed' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    if ((lan)); then
        say "making a virtual LAN: bridge namespace $NS_PREFIX-br, node namespaces $NS_PREFIX-n1..$n"
        make_lan "$n"
    fi
    for ((i = 1; i <= n; i++)); do
        args=(node --data-dir "$RUN/node$i" --log-file "$RUN/node$i.log"
            --network "$NETWORK" --difficulty "$difficulty")
        if ((lan)); then
            args+=(--listen "/ip4/0.0.0.0/tcp/$PORT_BASE")
            echo "$NS_PREFIX-n$i" >"$RUN/node$i.netns"
        else
            args+=(--listen "/ip4/127.0.0.1/tcp/$((PORT_BASE + i))" --no-mdns)
            ((i == 1)) || args+=(--bootstrap "$addr")
        fi
        printf '%s\n' "${args[@]}" >"$RUN/node$i.args"
        start_node "$i"
        if ((i == 1)); then
            if ((lan)); then
                wait_ready 1
            else
                addr=$(wait_listening 1)
                wait_ready 1
                say "node 1 is at $addr"
            fi
        fi
    done
    for ((i = 2; i <= n; i++)); do
        wait_ready "$i"
    done
    if ((n > 1)); then
        say "waiting (at most ${PEER_TIMEOUT} s) until every node has a peer..."
        deadline=$((SECONDS + PEER_TIMEOUT))
        for ((i = 1; i <= n; i++)); do
            while :; do
                peers=$(status_field "$i" peers)
                [[ -n $peers ]] && ((peers >= 1)) && break
                if ((SECONDS >= deadline)); then
                    cmd_status >&2 || true
                    warn "node $i found no peer within $PEER_TIMEOUT s"
                    show_tail "$i"
                    exit 1
                fi
                sleep 0.2
            done
        done
    fi
    UP_DONE=1
    trap - EXIT INT TERM
    say ""
    cmd_status
    say ""
    say "$n node(s) up ($S_MODE mode, network $NETWORK, difficulty $difficulty); run dir $RUN"
    say "try: $ME send 1 put color blue; $ME send $n get color; $ME console 1; $ME down"
}

up_failed() {
    local rc=$?
    ((UP_DONE)) && return
    ((rc != 0)) || rc=1
    trap - EXIT INT TERM
    warn "up failed; stopping what it started"
    # A node started just before the failure may not have its pid file yet.
    local job
    for job in $(jobs -p); do
        kill -TERM "$job" 2>/dev/null || true
    done
    teardown || true
    exit "$rc"
}

cmd_status() {
    load_state
    local i pid out height tip peers id
    for ((i = 1; i <= S_NODES; i++)); do
        pid=$(node_pid "$i")
        id=$(peer_id "$i")
        if ! node_running "$i"; then
            printf 'node %-3s down  pid %-8s peer %s\n' "$i" "${pid:--}" "${id:--}"
            continue
        fi
        if out=$(attach "$i" 5 -c status 2>/dev/null); then
            height=$(awk '$1 == "height:" { print $2 }' <<<"$out")
            tip=$(awk '$1 == "tip:" { print substr($2, 1, 12) }' <<<"$out")
            peers=$(awk '$1 == "peers:" { print $2 }' <<<"$out")
            printf 'node %-3s up    pid %-8s peer %s  height %-5s tip %s  peers %s\n' \
                "$i" "$pid" "$id" "$height" "$tip" "$peers"
        else
            printf 'node %-3s up    pid %-8s peer %s  (console not answering)\n' "$i" "$pid" "$id"
        fi
    done
}

cmd_send() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1)) rc=0
    shift
    (($# > 0)) || die "usage: send I <console command>"
    node_running "$i" || die "node $i is not running (restart it with: $ME restart $i)"
    attach "$i" "$SEND_TIMEOUT" -c "$*" || rc=$?
    ((rc != 124)) || warn "node $i did not answer within $SEND_TIMEOUT s"
    exit "$rc"
}

cmd_console() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1))
    node_running "$i" || die "node $i is not running (restart it with: $ME restart $i)"
    "$S_BIN" attach --data-dir "$RUN/node$i"
}

cmd_logs() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1))
    [[ -f $RUN/node$i.log ]] || die "node $i has no log yet"
    case ${2:-} in
        "") tail -n 50 "$RUN/node$i.log" ;;
        -f) exec tail -n 50 -f "$RUN/node$i.log" ;;
        *) die "usage: logs I [-f]" ;;
    esac
}

cmd_kill() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1)) pid deadline=$((SECONDS + 5))
    pid=$(node_pid "$i")
    node_running "$i" || die "node $i is not running"
    kill -KILL "$pid"
    while node_process "$i" "$pid"; do
        ((SECONDS < deadline)) || die "node $i (pid $pid) survived SIGKILL for 5 s"
        sleep 0.05
    done
    say "killed node $i (pid $pid)"
}

cmd_restart() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1)) ns
    node_running "$i" && die "node $i is running (pid $(node_pid "$i")); kill it first"
    if [[ -f $RUN/node$i.netns ]]; then
        need_root "restart $i"
        ns=$(<"$RUN/node$i.netns")
        netns_exists "$ns" || die "namespace $ns is gone; run '$ME down' and up again"
    fi
    if [[ $S_MODE == loopback ]]; then
        local port
        port=$(awk 'prev == "--listen" { n = split($0, a, "/"); print a[n]; exit } { prev = $0 }' "$RUN/node$i.args")
        if is_uint "$port" && port_in_use "$port"; then
            die "port $port of node $i is taken by another process; cannot restart node $i"
        fi
    fi
    echo "--- restart ---" >>"$RUN/node$i.out"
    start_node "$i"
    wait_ready "$i"
    say "restarted node $i (pid $(node_pid "$i"))"
}

cmd_down() {
    if [[ ! -f $STATE ]]; then
        if [[ -d $RUN ]] && [[ -n $(ls -A "$RUN") ]]; then
            die "$RUN holds no testnet; not touching it"
        fi
        say "nothing is up"
        return 0
    fi
    load_state
    if [[ -s $RUN/namespaces ]]; then
        need_root down
    fi
    teardown || die "down left something behind (see above); run it again"
    say "testnet down"
}

cmd_demo() {
    local n=3
    if (($# > 0)) && is_uint "$1"; then
        n=$1
        shift
    fi
    cmd_up "$n" "$@"
    trap 'say ""; cmd_down' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cat <<EOF

==============================================================================
 kvchain testnet: $n nodes. You are in node 1's console. Try:
   put color blue         write (prints the tx id, then when it is included)
   get color              read the latest value
   history color          every version of a key
   status                 height, tip, peers, mining
   peers                  connected peers
   help                   every command
 From another terminal, talk to the other nodes:
   $ME send $n get color
   $ME status
 quit or Ctrl-D leaves the console and stops the testnet.
==============================================================================
EOF
    "$S_BIN" attach --data-dir "$RUN/node1" || true
}

main() {
    local sub=${1:-help}
    (($# == 0)) || shift
    case $sub in
        up) cmd_up "$@" ;;
        demo) cmd_demo "$@" ;;
        send) cmd_send "$@" ;;
        console) cmd_console "$@" ;;
        logs) cmd_logs "$@" ;;
        status) cmd_status "$@" ;;
        kill) cmd_kill "$@" ;;
        restart) cmd_restart "$@" ;;
        down) cmd_down "$@" ;;
        help | -h | --help) usage ;;
        *)
            usage >&2
            exit 1
            ;;
    esac
}

main "$@"
