#!/usr/bin/env bash
# The whole test suite: model set-up, format, lints, Rust unit and end-to-end tests
# (benches run once in test mode), the OpenAI SDK tests, and a short
# bounded fuzz run. Set SWITCHYARD_FUZZ_SECONDS=0 to skip fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The classifier's model files, checksummed; the model-dependent tests
# fail rather than skip when they are required.
SWITCHYARD_MODEL_DIR="$(bash scripts/models.sh)"
export SWITCHYARD_MODEL_DIR SWITCHYARD_REQUIRE_MODEL=1

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo build (debug binaries for the end-to-end tests)"
cargo build --locked --workspace --bins

step "cargo test"
cargo test --locked --workspace --all-targets

step "SDK end-to-end tests (official openai and anthropic clients, conformance matrix)"
.venv/bin/python -m pytest -q tests/sdk

fuzz_seconds="${SWITCHYARD_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != "0" ]; then
  step "fuzz (${fuzz_seconds}s per target)"
  bash scripts/fuzz.sh "$fuzz_seconds"
fi
