#!/usr/bin/env bash
# The instrument against the oldest rmcp of the range it supports (Cargo.toml: `rmcp = "3.9"`;
# Cargo.lock holds the newest, which the workspace tests use). `Traced` forwards every
# `ServerHandler` method by hand: tests/server/forwarding.rs reads the rmcp in use, so running
# the instrument's tests at both ends of the range checks the forwarding against each.
set -euo pipefail
cd "$(dirname "$0")/.."
OLDEST=3.9.0
cp Cargo.lock Cargo.lock.newest
trap 'mv Cargo.lock.newest Cargo.lock' EXIT
cargo update -p rmcp --precise "$OLDEST" --quiet
echo "rmcp-oldest: archon-mcp-instrument against rmcp $OLDEST"
cargo test -p archon-mcp-instrument --all-targets --quiet
