# lib.sh: what every experiment script in scripts/experiments/ shares. Sourced after
# setting EXP (the experiment's name, also its folder under docs/experiments/); defines
# variables and functions only.
#
#   exp_init "$@"      parses the common flags, builds the release binary, writes meta.txt
#   exp_python ARGS    runs Python 3 with matplotlib (a venv the first call creates)
#   exp_log MESSAGE    a progress line on stderr
#   exp_done           the last call: adds how long the run took to meta.txt
#
# Common flags of every experiment script:
#   --quick        a shorter run (under 3 minutes) with fewer points
#   --smoke        the smallest run that still exercises every part (CI: under a minute)
#   --out DIR      where the CSV, the plot and meta.txt go (default docs/experiments/EXP;
#                  --smoke defaults to a temp dir, so CI never touches the committed data)
# After exp_init: MODE (full|quick|smoke), OUT, BIN (the release kvchain), ROOT (the repo).
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts sourcing this

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${KVCHAIN_TESTNET_BIN:-$ROOT/target/release/kvchain}
VENV=${KVCHAIN_EXPERIMENTS_VENV:-$ROOT/target/experiments-venv}

exp_log() { printf '%s: %s\n' "$EXP" "$*" >&2; }
exp_die() { exp_log "error: $*"; exit 2; }

# Parses --quick, --smoke and --out DIR (anything else is an error), builds the release
# binary, creates OUT and writes OUT/meta.txt: when, where and how the data was made.
exp_init() {
    local args="$*"
    MODE=full
    OUT=
    while (($#)); do
        case $1 in
            --quick) MODE=quick ;;
            --smoke) MODE=smoke ;;
            --out)
                [[ $# -ge 2 ]] || exp_die "--out needs a directory"
                OUT=$2
                shift
                ;;
            -h | --help)
                sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"
                exit 0
                ;;
            *) exp_die "unknown argument '$1' (try --help)" ;;
        esac
        shift
    done
    if [[ -z $OUT ]]; then
        if [[ $MODE == smoke ]]; then OUT=$(mktemp -d); else OUT=$ROOT/docs/experiments/$EXP; fi
    fi
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    if [[ -z ${KVCHAIN_TESTNET_BIN:-} ]]; then
        exp_log "building the release binary"
        # Under `cargo test` the environment holds the test's CARGO_PKG_* and the like;
        # passed on, they would make cargo rebuild the binary every time.
        (cd "$ROOT" && unset "${!CARGO_PKG_@}" "${!CARGO_MANIFEST_@}" "${!CARGO_BIN_@}" \
            CARGO_CRATE_NAME CARGO_PRIMARY_PACKAGE CARGO_TARGET_TMPDIR CARGO_RUSTC_CURRENT_DIR &&
            cargo build --release --quiet --bin kvchain) || exp_die "cargo build failed"
    fi
    [[ -x $BIN ]] || exp_die "no kvchain binary at $BIN"
    {
        echo "experiment: $EXP ($MODE)"
        echo "command: scripts/experiments/$(basename "$0")${args:+ $args}"
        echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
        echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
        echo "commit: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
    } >"$OUT/meta.txt"
    exp_log "mode $MODE, writing to $OUT"
    EXP_STARTED=$SECONDS
}

# Appends the run's wall time (after the build) to meta.txt: the evidence that a mode
# keeps within its time budget (full 15 minutes, --quick 3, --smoke 1).
exp_done() {
    local took=$((SECONDS - ${EXP_STARTED:-0}))
    echo "took: ${took} s (after the build)" >>"$OUT/meta.txt"
    exp_log "took ${took} s"
}

# Runs python3 with matplotlib, from a venv under target/ that the first call creates
# (pip install from PyPI). Plots are drawn headless (the Agg backend).
exp_python() {
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
        exp_log "installing matplotlib into $VENV"
        python3 -m venv "$VENV" || exp_die "python3 -m venv failed"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check 'matplotlib>=3.7,<4' ||
            exp_die "pip install matplotlib failed"
    fi
    MPLBACKEND=Agg PYTHONPATH="$ROOT/scripts/experiments${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/python" "$@"
}
