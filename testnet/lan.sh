# lan.sh: the virtual LAN of `testnet.sh up N --lan`. A namespace PREFIX-br holds bridge
# br0; node I runs in namespace PREFIX-nI whose eth0 is a veth plugged into that bridge,
# with address LAN_SUBNET.I/24 and a multicast route, so that mDNS works as on a real LAN.
# Nothing is made in the host's own namespace. Every namespace is recorded in
# $RUN/namespaces before it is made, so that lan_down deletes it whatever happens next.
# Sourced by testnet.sh after lib.sh (settings and helpers).
# shellcheck shell=bash

need_root() {
    if [[ $(id -u) != 0 ]]; then
        die "$1 needs root: network namespaces, veth pairs and bridges can only be made by root.
  Build first as yourself (cargo build --release), then: sudo $ME $1"
    fi
    command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing: apt-get install iproute2"
}

# Whether network namespace $1 exists.
netns_exists() {
    local names
    names=$(ip netns list 2>/dev/null | awk '{ print $1 }')
    grep -qxF -- "$1" <<<"$names"
}

# Whether this run dir made namespaces (down then needs root).
lan_made() { [[ -s $RUN/namespaces ]]; }

make_netns() {
    if netns_exists "$1"; then
        die "network namespace $1 already exists (another testnet? stop it with its own KVCHAIN_TESTNET_DIR, or set KVCHAIN_TESTNET_NS to another prefix)"
    fi
    echo "$1" >>"$RUN/namespaces"
    ip netns add "$1"
}

# lan_up N: the bridge and N node namespaces.
lan_up() {
    local n=$1 i br="$NS_PREFIX-br" ns
    [[ $NS_PREFIX =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "KVCHAIN_TESTNET_NS must be 1-40 letters, digits, _ . -"
    say "making a virtual LAN: bridge namespace $br, node namespaces $NS_PREFIX-n1..$n"
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

# lan_node_ns I: the namespace node I runs in, empty in loopback mode.
lan_node_ns() { cat "$RUN/node$1.netns" 2>/dev/null || true; }

# lan_check_ns I: fails unless node I's namespace (if it has one) still exists.
lan_check_ns() {
    local ns
    ns=$(lan_node_ns "$1")
    [[ -n $ns ]] || return 0
    need_root "restart $1"
    netns_exists "$ns" || die "namespace $ns is gone; run '$ME down' and up again"
}

# Deletes every namespace this run dir made, ending what still runs inside (only what
# we started can be there). Fails if one cannot be deleted.
lan_down() {
    local ns pid
    [[ -f $RUN/namespaces ]] || return 0
    while read -r ns; do
        [[ -n $ns ]] || continue
        netns_exists "$ns" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" || {
            warn "cannot delete network namespace $ns"
            return 1
        }
    done <"$RUN/namespaces"
}
