#!/usr/bin/env bash
# The examples and benchmark programs the docs tell users to run, each in a quick mode, so none
# rots unnoticed (the criterion benches run in their quick mode in the test command itself).
# Run after the test command: it uses the debug builds that command made.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "quick-examples: panel_bench (every panel, variable, alert rule and SQL API query on 3,000 rows)"
cargo run --quiet --example panel_bench -- --rows 3000 >/dev/null
echo "quick-examples: panel_bench --only … --explain (the nested plans of one query)"
cargo run --quiet --example panel_bench -- --rows 3000 --only "Top tools" --explain >/dev/null 2>&1
echo "quick-examples: soak (12 s at 500 spans/s)"
cargo build --quiet -p archon-mcp-exporter
cargo run --quiet --example soak -- --minutes 0.2 --rate 500 >/dev/null
echo "quick-examples: the binaries start (--help)"
cargo run --quiet -p archon-mcp-exporter -- --help >/dev/null
cargo run --quiet --bin tool_server -- --help >/dev/null
cargo run --quiet --bin load -- --help >/dev/null
cargo run --quiet --example soak -- --help >/dev/null
cargo run --quiet --example panel_bench -- --help >/dev/null
