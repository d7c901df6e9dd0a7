#!/usr/bin/env bash
# testnet.sh: run a network of kvchain nodes on this machine, either as processes on
# 127.0.0.1 (nodes join through node 1) or, with --lan, on a virtual LAN of network
# namespaces where they find each other by mDNS alone. `testnet/testnet.sh help` for usage.
# The commands are here; lib.sh has the settings and shared helpers, nodes.sh starts,
# watches and stops nodes (and says what the run dir holds), lan.sh makes the virtual LAN.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ME="testnet/testnet.sh"
# shellcheck source=testnet/lib.sh
source "$SCRIPT_DIR/lib.sh"
# shellcheck source=testnet/nodes.sh
source "$SCRIPT_DIR/nodes.sh"
# shellcheck source=testnet/lan.sh
source "$SCRIPT_DIR/lan.sh"

usage() {
    cat <<EOF
usage: $ME <command> [args]

  up N [--difficulty D] [--network NAME] [--lan] [--http] [-- NODE-ARGS...]
                       build the release binary and start N nodes (difficulty 16 by default)
                       default: on 127.0.0.1, p2p port \$KVCHAIN_TESTNET_PORT+I (base 4100),
                       no mDNS, nodes 2..N bootstrap from node 1
                       --lan: one network namespace per node on a virtual bridge, addresses
                       $LAN_SUBNET.I/24, no bootstrap: nodes meet by mDNS alone (needs root)
                       --http: node I serves the HTTP API on port \$KVCHAIN_TESTNET_HTTP_PORT+I
                       (base: p2p base + 100, so 127.0.0.1:4201, 4202, ...); with --lan on
                       $LAN_SUBNET.I, reachable from the namespaces only. status prints the URLs
                       NODE-ARGS go to every node, e.g. -- --confirmations 1 --threads 2
  demo [N] [up options]
                       up N (default 3), a console on node 1, down when it exits
  send I <command>     run one console command on node I (e.g. send 2 get color)
  console I            interactive console on node I
  logs I [-f]          last 50 lines of node I's log (-f: follow)
  status               one line per node: pid, peer id, height, tip, peers, HTTP URL
  kill I               SIGKILL node I (fault tests)
  restart I            start node I again with the same data dir and arguments
  down                 stop every node, delete the namespaces, remove the run dir
  help                 this text

environment:
  KVCHAIN_TESTNET_DIR        run dir (default testnet/.run); now $RUN
  KVCHAIN_TESTNET_PORT       p2p port base (default 4100)
  KVCHAIN_TESTNET_HTTP_PORT  HTTP port base (default p2p base + 100; 0: any free port,
                             a new one on restart)
  KVCHAIN_TESTNET_NS         namespace name prefix for --lan (default kvtnet)
  KVCHAIN_TESTNET_NETWORK    network name (default testnet; up --network overrides it)
  KVCHAIN_TESTNET_BIN        use this kvchain binary instead of building one
  KVCHAIN_TESTNET_TIMEOUT    seconds up waits for every node to have a peer (default 30)
  KVCHAIN_TESTNET_SEND_TIMEOUT  seconds send waits for an answer (default 30)
EOF
}

cmd_up() {
    local n="" difficulty=16 lan=0 http=0 i host boot="" args=() node_args=()
    local use="usage: up N [--difficulty D] [--network NAME] [--lan] [--http] [-- NODE-ARGS]"
    while (($# > 0)); do
        case $1 in
            --difficulty)
                is_uint "${2:-}" || die "--difficulty needs a number of bits"
                difficulty=$2
                shift
                ;;
            --network)
                [[ -n ${2:-} ]] || die "--network needs a name"
                NETWORK=$2
                shift
                ;;
            --lan) lan=1 ;;
            --http) http=1 ;;
            --)
                shift
                node_args=("$@")
                break
                ;;
            *)
                if [[ -n $n ]] || ! is_uint "$1"; then die "up: unexpected argument '$1' ($use)"; fi
                n=$((10#$1))
                ;;
        esac
        shift
    done
    [[ -n $n ]] || die "$use"
    ((n >= 1 && n <= 100)) || die "up: N must be 1..100"
    check_node_args "${node_args[@]}"
    if ! is_uint "$PORT_BASE" || ((PORT_BASE < 1 || PORT_BASE + n > 65535)); then
        die "KVCHAIN_TESTNET_PORT must be a port number (1..$((65535 - n)))"
    fi
    [[ -n $HTTP_BASE ]] || HTTP_BASE=$((PORT_BASE + 100))
    if ! is_uint "$HTTP_BASE" || ((HTTP_BASE + n > 65535)); then
        die "KVCHAIN_TESTNET_HTTP_PORT must be 0 or a port number (1..$((65535 - n)))"
    fi
    ((!lan)) || need_root "up $n --lan"
    [[ $RUN != / ]] || die "refusing to use / as the run dir"
    if [[ -f $STATE ]]; then
        load_state
        die "a testnet is already set up in $RUN ($S_NODES nodes): run '$ME down' first"
    fi
    if [[ -d $RUN ]] && [[ -n $(ls -A "$RUN") ]]; then
        die "$RUN is not empty and holds no testnet: set KVCHAIN_TESTNET_DIR to another dir"
    fi
    ((lan)) || check_ports "$n" "$http"

    build
    mkdir -p "$RUN"
    S_MODE=loopback
    ((!lan)) || S_MODE=lan
    S_NODES=$n
    printf '%s=%s\n' mode "$S_MODE" nodes "$n" bin "$S_BIN" network "$NETWORK" \
        difficulty "$difficulty" >"$STATE"

    # From here on, a failure (or Ctrl-C) undoes everything this run started.
    UP_DONE=0
    trap 'up_failed' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    ((!lan)) || lan_up "$n"
    for ((i = 1; i <= n; i++)); do
        args=(node --data-dir "$RUN/node$i" --log-file "$RUN/node$i.log"
            --network "$NETWORK" --difficulty "$difficulty")
        if ((lan)); then
            host="$LAN_SUBNET.$i"
            args+=(--listen "/ip4/0.0.0.0/tcp/$PORT_BASE")
            echo "$NS_PREFIX-n$i" >"$RUN/node$i.netns"
        else
            host=127.0.0.1
            args+=(--listen "/ip4/127.0.0.1/tcp/$((PORT_BASE + i))" --no-mdns)
            ((i == 1)) || args+=(--bootstrap "$boot")
        fi
        ((!http)) || args+=(--http "$host:$((HTTP_BASE == 0 ? 0 : HTTP_BASE + i))")
        printf '%s\n' "${args[@]}" "${node_args[@]}" >"$RUN/node$i.args"
        start_node "$i"
        if ((i == 1)); then
            wait_ready 1 || exit 1
            if ((!lan)); then
                boot=$(node_info 1 p2p)
                [[ $boot == /ip4/127.0.0.1/*/p2p/* ]] || die "node 1's node.json has no 127.0.0.1 address: '$boot'"
                say "node 1 is at $boot"
            fi
        fi
    done
    for ((i = 2; i <= n; i++)); do
        wait_ready "$i" || exit 1
    done
    if ((n > 1)); then
        say "waiting (at most $PEER_TIMEOUT s) until every node has a peer..."
        if ! wait_for "$PEER_TIMEOUT" "every node to have a peer" all_have_peers; then
            cmd_status >&2 || true
            exit 1
        fi
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
    local rc=$? job
    ((UP_DONE)) && return
    ((rc != 0)) || rc=1
    trap - EXIT INT TERM
    warn "up failed; stopping what it started"
    # A node started just before the failure may not have its pid file yet.
    for job in $(jobs -p); do
        kill -TERM "$job" 2>/dev/null || true
    done
    teardown || warn "could not undo everything; run '$ME down'"
    exit "$rc"
}

cmd_status() {
    load_state
    local i state out detail url
    for ((i = 1; i <= S_NODES; i++)); do
        state=down detail="" url=$(node_info "$i" http)
        if node_running "$i"; then
            state=up detail="  (console not answering)"
            if out=$(attach "$i" 5 -c status --json 2>/dev/null); then
                detail=$(printf '  height %-5s tip %.12s  peers %s' "$(json_get height <<<"$out")" \
                    "$(json_get tip <<<"$out")" "$(json_get peers <<<"$out")")
            fi
        fi
        printf 'node %-3s %-5s pid %-8s peer %s%s%s\n' "$i" "$state" "$(node_pid "$i")" \
            "$(node_info "$i" peer_id)" "$detail" "${url:+  http $url}"
    done
}

# Loads the state and checks that node $1 exists and runs.
need_running() {
    load_state
    check_index "${1:-}"
    node_running $((10#$1)) || die "node $1 is not running (restart it with: $ME restart $1)"
}

cmd_send() {
    need_running "${1:-}"
    local i=$((10#$1)) rc=0
    shift
    (($# > 0)) || die "usage: send I <console command>"
    attach "$i" "$SEND_TIMEOUT" -c "$*" || rc=$?
    ((rc != 124)) || warn "node $i did not answer within $SEND_TIMEOUT s"
    exit "$rc"
}

cmd_console() {
    need_running "${1:-}"
    exec "$S_BIN" attach --data-dir "$RUN/node$((10#$1))"
}

cmd_logs() {
    load_state
    check_index "${1:-}"
    local log="$RUN/node$((10#$1)).log"
    [[ -f $log ]] || die "node $1 has no log yet"
    case ${2:-} in
        "") tail -n 50 "$log" ;;
        -f) exec tail -n 50 -f "$log" ;;
        *) die "usage: logs I [-f]" ;;
    esac
}

cmd_kill() {
    need_running "${1:-}"
    local i=$((10#$1)) pid
    pid=$(node_pid "$i")
    kill -KILL "$pid"
    wait_for 5 "node $i (pid $pid) to die" none_running "$i" || exit 1
    wait_for 5 "node $i's ports to close" ports_closed "$i" || exit 1
    say "killed node $i (pid $pid)"
}

cmd_restart() {
    load_state
    check_index "${1:-}"
    local i=$((10#$1)) port
    ! node_running "$i" || die "node $i is running (pid $(node_pid "$i")); kill it first"
    lan_check_ns "$i"
    # Loopback: the ports it had (p2p and HTTP) must be free again.
    for port in $([[ $S_MODE != loopback ]] || node_ports "$i"); do
        ! port_in_use "$port" || die "port $port of node $i is taken; cannot restart node $i"
    done
    echo "--- restart ---" >>"$RUN/node$i.out"
    start_node "$i"
    wait_ready "$i" || die "node $i did not start again"
    say "restarted node $i (pid $(node_pid "$i"))"
}

cmd_down() {
    if [[ ! -f $STATE ]]; then
        [[ ! -d $RUN || -z $(ls -A "$RUN") ]] || die "$RUN holds no testnet; not touching it"
        say "nothing is up"
        return 0
    fi
    load_state
    ! lan_made || need_root down
    teardown || die "down left something behind (see above; run dir $RUN kept); run it again"
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
        up | demo | send | console | logs | status | kill | restart | down) "cmd_$sub" "$@" ;;
        help | -h | --help) usage ;;
        *) usage >&2 && exit 1 ;;
    esac
}

main "$@"
