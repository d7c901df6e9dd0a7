#!/usr/bin/env bash
# Profiles node 1 of the throughput network (scripts/throughput.sh) under load: records
# perf samples with DWARF call stacks for a few seconds of the measured window, then writes
# a text summary (the hottest functions, self and with callees) and, when inferno is
# installed (`cargo install inferno`), a flame graph. A measurement, not a test.
#
# Usage: scripts/profile.sh OUT-PREFIX [-- BENCH-ARGS...]
#   writes OUT-PREFIX.txt (and OUT-PREFIX.svg); BENCH-ARGS go to throughput.sh.
# Environment: as scripts/throughput.sh; SECONDS_PROFILED (default 8); needs perf
#   (Debian: linux-perf) and root or kernel.perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 && $1 != -* ]] || { echo "usage: scripts/profile.sh OUT-PREFIX [-- BENCH-ARGS...]" >&2; exit 2; }
out=$1
shift
command -v perf >/dev/null || { echo "error: perf is missing (Debian: apt-get install linux-perf)" >&2; exit 1; }
secs=${SECONDS_PROFILED:-8}
tmp=$(mktemp -d)
run_pid=
cleanup() {
    if [[ -n $run_pid ]] && kill -0 "$run_pid" 2>/dev/null; then
        kill "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
ME=scripts/profile.sh
# shellcheck source=testnet/lib.sh
source testnet/lib.sh # wait_for, json_get

scripts/throughput.sh "$@" >"$tmp/throughput.txt" 2>&1 &
run_pid=$!
# The load starts once the report's header is printed; skip its warm-up too.
started() { grep -q '^== .* bench ' "$tmp/throughput.txt" 2>/dev/null; }
wait_for 600 "the load to start" started
sleep 6
run=$(sed -n 's/^== run dir: //p' "$tmp/throughput.txt")
pid=$(json_get pid <"$run/node1.json")
perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$tmp/perf.data" -- sleep "$secs"
wait "$run_pid"
run_pid=
{
    echo "# profile of node 1 under scripts/throughput.sh $*"
    cat "$tmp/throughput.txt"
    echo
    echo "## threads"
    perf report -i "$tmp/perf.data" --no-children --sort comm -g none --stdio 2>/dev/null | grep '%'
    echo
    echo "## hottest functions (self)"
    perf report -i "$tmp/perf.data" --no-children --sort sym -g none --stdio 2>/dev/null | grep '%' | sed -n '1,30p'
    echo
    echo "## kvchain functions with their callees"
    perf report -i "$tmp/perf.data" --children --sort sym -g none --stdio 2>/dev/null |
        grep '%' | grep -E 'kvchain::|ed25519|gossipsub::|hyper::' | sed -n '1,40p'
} | cut -c1-200 >"$out.txt"
if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
    perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --minwidth 2 >"$out.svg"
    echo "wrote $out.txt and $out.svg"
else
    echo "wrote $out.txt (no flame graph: cargo install inferno for one)"
fi
