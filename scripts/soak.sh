#!/usr/bin/env bash
# Soak test of the fault-load harness: random SIGKILLs, restarts and (as root) partitions
# under load for KVCHAIN_SOAK_SECS seconds (default 600), then the usual check, printing
# `writes: confirmed N, lost L, nodes agreeing k/n`. KVCHAIN_FAULT_SEED replays a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
export KVCHAIN_SOAK_SECS="${KVCHAIN_SOAK_SECS:-600}"
exec cargo test --test faults -- --ignored soak --nocapture
