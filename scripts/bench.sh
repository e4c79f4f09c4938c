#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md, in one command. `--quick` runs the small versions (CI runs
# them through `cargo test --all-targets`, which gives the bench binaries no `--bench` flag).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=1000000
if [ "${1:-}" = "--quick" ]; then
    export ARCHON_BENCH_QUICK=1
    rows=50000
fi
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%Y-%m-%d)"
cargo build --release -p archon-mcp-exporter   # `serve`, run as its own process by the ingest bench
cargo bench --bench overhead
cargo bench --bench mapping
cargo bench --bench ingest
cargo run --release --example panel_bench -- --rows "$rows"
