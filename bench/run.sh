#!/usr/bin/env bash
# The end-to-end load harness in one command: builds the gateway and the
# harness (release) while the classifier's model files and the peer gateway
# (LiteLLM's proxy, pinned, from PyPI, in its own virtualenv) install
# beside it, then runs every scenario against the gateway, directly against
# the mock, through a byte relay (the floor) and through LiteLLM,
# interleaved. Prints a markdown table; writes bench/results/loadbench.json
# and latency.svg, and with --readme rewrites the README's performance
# table. --quick: short rounds (a smoke run; its figures are noisy).
# --only TEXT: only the cells whose "scenario / load" contains TEXT.
# --cluster: instead, single node against cluster mode (two replicas and a
# local Redis, exact and pooled); writes bench/results/clusterbench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = "--cluster" ]; then
  shift
  cargo build --release --locked -p engine -p bench --bins
  exec ./target/release/clusterbench "$@"
fi
mkdir -p .cache

# Side jobs, each with its log; their failure costs rows, not the run.
peer_venv=.cache/litellm-venv
(
  if [ ! -x "$peer_venv/bin/litellm" ]; then
    python3 -m venv "$peer_venv"
    "$peer_venv/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]==1.106.2'
  fi
) > .cache/litellm-install.log 2>&1 &
peer_job=$!
bash scripts/models.sh > .cache/models-dir 2> .cache/models.log &
models_job=$!

cargo build --release --locked -p engine -p bench --bins

if wait "$models_job"; then
  SWITCHYARD_MODEL_DIR=$(cat .cache/models-dir)
  export SWITCHYARD_MODEL_DIR
else
  echo "bench: model files unavailable (.cache/models.log); classifier rows skipped" >&2
fi
if wait "$peer_job" && [ -x "$peer_venv/bin/litellm" ]; then
  export LOADBENCH_LITELLM="$PWD/$peer_venv/bin/litellm"
else
  echo "bench: LiteLLM could not be installed (.cache/litellm-install.log); peer column skipped" >&2
fi
exec ./target/release/loadbench "$@"
