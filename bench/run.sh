#!/usr/bin/env bash
# The end-to-end load harness in one command: builds the gateway and the
# harness (release), installs the classifier's model files and the peer
# gateway (LiteLLM's proxy, pinned, from PyPI, in its own virtualenv), then
# runs every scenario against the gateway, directly against the mock and
# through LiteLLM, interleaved. Prints a markdown table; writes
# bench/results/loadbench.json and latency.svg, and with --readme rewrites
# the README's performance table. --quick: short rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if model_dir=$(bash scripts/models.sh); then
  export SWITCHYARD_MODEL_DIR="$model_dir"
fi
peer_venv=.cache/litellm-venv
if [ ! -x "$peer_venv/bin/litellm" ]; then
  python3 -m venv "$peer_venv"
  "$peer_venv/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]==1.106.2' ||
    echo "bench: LiteLLM could not be installed; the peer column is skipped" >&2
fi
if [ -x "$peer_venv/bin/litellm" ]; then
  export LOADBENCH_LITELLM="$PWD/$peer_venv/bin/litellm"
fi
cargo build --release --locked -p engine -p bench --bins
exec ./target/release/loadbench "$@"
