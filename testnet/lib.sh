# lib.sh: the testnet's settings and the helpers every part of it shares. Sourced by
# testnet.sh (and by scripts/ that drive it); defines variables and functions only.
# shellcheck shell=bash disable=SC2034 # the settings are used by the files sourcing this

# --- Settings: every variable the testnet shares is set here, from the environment. ---
ME=${ME:-testnet/testnet.sh}
RUN=${KVCHAIN_TESTNET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.run}
[[ $RUN == /* ]] || RUN="$PWD/$RUN"
while [[ $RUN == */ && $RUN != / ]]; do RUN=${RUN%/}; done
STATE="$RUN/testnet.state"                   # key=value lines, see nodes.sh
PORT_BASE=${KVCHAIN_TESTNET_PORT:-4100}      # node I: p2p on PORT_BASE+I (loopback)
HTTP_BASE=${KVCHAIN_TESTNET_HTTP_PORT:-}     # node I: HTTP_BASE+I (default PORT_BASE+100)
NS_PREFIX=${KVCHAIN_TESTNET_NS:-kvtnet}      # --lan: namespaces PREFIX-br, PREFIX-nI
NETWORK=${KVCHAIN_TESTNET_NETWORK:-testnet}  # the nodes' --network
PEER_TIMEOUT=${KVCHAIN_TESTNET_TIMEOUT:-30}  # up: seconds until every node has a peer
SEND_TIMEOUT=${KVCHAIN_TESTNET_SEND_TIMEOUT:-30}
START_TIMEOUT=30                             # seconds a node may take to write node.json
LAN_SUBNET=10.77.0                           # --lan: node I is LAN_SUBNET.I/24

say() { printf '%s\n' "$*"; }
warn() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { warn "$*"; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# wait_for SECONDS WHAT COMMAND [ARG...]: the one way to wait. Runs COMMAND every 0.1 s
# until it returns 0 (then returns 0). COMMAND returning 2 or more means "this will never
# happen now" (the node died, say): returns 1 at once. After SECONDS, warns and returns 1.
wait_for() {
    local limit=$1 what=$2 rc deadline
    shift 2
    deadline=$((SECONDS + limit))
    while :; do
        rc=0
        "$@" || rc=$?
        ((rc != 0)) || return 0
        if ((rc != 1)); then
            warn "gave up waiting for $what"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "timed out after $limit s waiting for $what"
            return 1
        fi
        sleep 0.1
    done
}

# json_get KEY < JSON: the value of top-level KEY in the JSON kvchain writes for scripts:
# node.json (serde's pretty print, one `"key": value` a line, array items one a line) or
# `status --json` (one flat line). Prints a string without its quotes, an array's first
# item, nothing for null, [] or a missing key. Not a general JSON parser: it splits at
# newlines, commas and braces and does not decode escapes, which is exact for the values
# read here (numbers, booleans, hex ids, multiaddrs, URLs, names).
json_get() {
    # awk reads to the end (no `exit`), so that tr never meets a closed pipe.
    # shellcheck disable=SC2020 # each of , { } becomes a newline
    tr ',{}' '\n\n\n' | awk -v key="\"$1\":" '
        done { next }
        { sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
        item { gsub(/^"|"$/, ""); if ($0 != "]") print; done = 1; next }
        index($0, key) == 1 {
            v = substr($0, length(key) + 1)
            sub(/^[ \t]+/, "", v)
            if (v == "[") { item = 1; next }
            if (v != "null" && v != "[]") { gsub(/^"|"$/, "", v); print v }
            done = 1
        }'
}

# Whether process $1 exists and one of its threads is neither a zombie nor dead. (Its
# main thread can be a zombie while the others still exit, holding its sockets open.)
alive() {
    local task stat
    is_uint "${1:-}" || return 1
    for task in /proc/"$1"/task/*/stat; do
        stat=$(cat "$task" 2>/dev/null) || continue
        stat=${stat##*) }
        [[ ${stat%% *} == [ZX] ]] || return 0
    done
    return 1
}

# Whether process $2 is alive and is node $1 of this run dir (its command line names the
# node's data dir), so that a recycled pid is never signalled.
node_process() {
    local cmdline
    alive "${2:-}" || return 1
    cmdline=$(tr '\0' '\n' 2>/dev/null <"/proc/$2/cmdline") || return 1
    grep -qxF -- "$RUN/node$1" <<<"$cmdline"
}

# Whether something listens on TCP port $1 of 127.0.0.1. libp2p listens with SO_REUSEPORT,
# so a second node would share a port with a first one rather than fail: check first.
port_in_use() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
