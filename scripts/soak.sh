#!/usr/bin/env bash
# Soak test of the fault-load harness: random SIGKILLs, restarts and (as root) partitions
# under load for KVCHAIN_SOAK_SECS seconds (default 600), then the usual check, printing
# `writes: confirmed N, lost L, nodes agreeing k/n`. KVCHAIN_FAULT_SEED replays a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
export KVCHAIN_SOAK_SECS="${KVCHAIN_SOAK_SECS:-600}"
# Release build: nodes run as they would in use (a debug build verifies signatures and
# hashes blocks many times slower). KVCHAIN_SOAK_DIFFICULTY sets the difficulty (22).
exec cargo test --release --test faults -- --ignored soak --nocapture
