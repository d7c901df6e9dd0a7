#!/usr/bin/env bash
# Runs the criterion benchmarks (mining, chain, writes, signatures) and the single-thread
# hashrate tool, and keeps the whole output in target/bench-report.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p target
report=target/bench-report.txt
{
    echo "# kvchain bench report, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    cargo bench --bench mining --bench chain --bench writes --bench signatures
    cargo run --release -- hashrate --seconds 3
} 2>&1 | tee "$report"
echo "report written to $report"
