#!/usr/bin/env bash
# The end-to-end load harness in one command: builds the gateway and the
# harness (release), then runs every scenario against the gateway and
# directly against the mock, interleaved. Prints a markdown table and
# writes bench/results/loadbench.json. Pass --quick for short rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p engine -p bench --bins
exec ./target/release/loadbench "$@"
