# private.sh: for the measurement scripts in scripts/, which each run a testnet of their
# own. Sourced; `private_testnet NAME PORT_BASE` points testnet.sh at a fresh temp run dir
# (network NAME, p2p ports PORT_BASE+1...), sources lib.sh, and takes the nodes down and
# removes the dir when the script exits, however it exits. Sets TMP (a temp dir the
# script may use too) and NET (the testnet script). Set ME first, for messages.
# shellcheck shell=bash

private_testnet() {
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    TMP=$(mktemp -d)
    export KVCHAIN_TESTNET_DIR="$TMP/run" KVCHAIN_TESTNET_NETWORK=$1 KVCHAIN_TESTNET_PORT=$2
    # shellcheck source=testnet/lib.sh
    source "$here/lib.sh"
    NET="$here/testnet.sh"
    trap private_testnet_down EXIT
    trap 'exit 130' INT TERM
}

# Stops every node of the private testnet and removes its temp dir.
private_testnet_down() {
    "$NET" down >/dev/null || true
    rm -rf "$TMP"
}
