#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz_targets.rs, each for a bounded time, in release mode.
#
#   scripts/fuzz.sh                      every target, 10 minutes each, one at a time
#   scripts/fuzz.sh --minutes 1          every target, 1 minute each
#   scripts/fuzz.sh --target tx_decode   one target (repeatable)
#   scripts/fuzz.sh --jobs 2             two targets at a time
#   scripts/fuzz.sh --seconds 30         a budget in seconds instead of minutes
#   scripts/fuzz.sh --list               the targets and what each covers
#
# Prints each target's cases per second and a summary; exits non-zero if any target
# failed (its log, the failing input in hex and a replay command are under
# target/fuzz-logs/ and target/fuzz-failures/). Installs nothing beyond what cargo fetches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=600
jobs=1
list=0
picked=()
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes) secs=$(awk -v m="$2" 'BEGIN { printf "%d", m * 60 }'); shift 2 ;;
        --seconds) secs="$2"; shift 2 ;;
        --target) picked+=("$2"); shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --list) list=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "--jobs takes a positive number" >&2; exit 2; }
[[ "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]] || { echo "the budget must be a positive number" >&2; exit 2; }

# Targets, in order, with what each covers: read from the list in the bodies' mod.rs.
bodies=tests/support/fuzz/mod.rs
targets_with_about() {
    awk '/^ *Target \{/ { t = 1 } t && /name:/ { n = $0; sub(/.*name: "/, "", n); sub(/".*/, "", n) }
         t && /about:/ { a = $0; sub(/.*about: "/, "", a); sub(/",$/, "", a); print n "\t" a; t = 0 }' "$bodies"
}
mapfile -t all < <(targets_with_about | cut -f1)
if [[ $list -eq 1 ]]; then
    targets_with_about | awk -F'\t' '{ printf "%-16s %s\n", $1, $2 }'
    exit 0
fi
if [[ ${#picked[@]} -eq 0 ]]; then
    picked=("${all[@]}")
fi
for t in "${picked[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx -- "$t" || { echo "no target $t (see --list)" >&2; exit 2; }
done

echo "building the fuzz targets (release)..."
# Run the test binary itself: cargo holds its build lock while it runs tests, which would
# keep two targets from running at once.
bin=$(cargo test --release --test fuzz_targets --no-run 2>&1 | tee /dev/stderr |
    sed -n 's/.*Executable.*(\(.*fuzz_targets-[^)]*\)).*/\1/p' | tail -1)
[[ -x "$bin" ]] || { echo "could not find the fuzz_targets binary" >&2; exit 1; }

logs=target/fuzz-logs
mkdir -p "$logs"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "running ${#picked[@]} target(s) for ${secs} s each, ${jobs} at a time; logs in $logs/"

run_one() {
    local t="$1" log="$logs/$1-$stamp.log"
    if KVCHAIN_FUZZ_SECS="$secs" "$bin" --exact "$t" --nocapture --test-threads 1 \
        >"$log" 2>&1; then
        echo "ok    $(grep -o -m1 "fuzz $t: .*" "$log" || echo "$t: (no summary line)")"
    else
        echo "FAIL  $t: see $log"
        grep -A6 "=== fuzz target" "$log" | grep -E "panic:|replay:|saved to" | sed 's/^/      /' || true
        return 1
    fi
}

failed=()
pids=()
names=()
reap() {
    # Waits for the oldest running target.
    local pid="${pids[0]}" name="${names[0]}"
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
    wait "$pid" || failed+=("$name")
}
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for t in "${picked[@]}"; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if [[ ${#pids[@]} -ge $jobs ]]; then
        reap
    fi
done
while [[ ${#pids[@]} -gt 0 ]]; do
    reap
done

echo
echo "summary: $(( ${#picked[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
for t in "${picked[@]}"; do
    line=$(grep -h -o -m1 "fuzz $t: .*" "$logs/$t-$stamp.log" 2>/dev/null || true)
    rate=$(sed -n 's/.* \([0-9]*\) cases\/s.*/\1/p' <<<"$line")
    cases=$(sed -n 's/.*: \([0-9]*\) cases in.*/\1/p' <<<"$line")
    status=ok
    for f in "${failed[@]+"${failed[@]}"}"; do [[ "$f" == "$t" ]] && status=FAIL; done
    printf '  %-16s %-5s %10s cases %8s cases/s\n' "$t" "$status" "${cases:-?}" "${rate:-?}"
done
[[ ${#failed[@]} -eq 0 ]]
