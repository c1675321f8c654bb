#!/usr/bin/env bash
# Rebuilds the classifier's built-in head from scratch: downloads the
# pinned data packages from PyPI (only here; the run and test commands
# never do), builds the labelled set, embeds it with the engine's own
# encoder and window, trains the head and writes
#   classifier/heads/builtin.json      (the head, committed)
#   classifier/heads/REPORT.md         (macro-F1, per label, confusion)
# Needs the model cache (scripts/models.sh). About two minutes here.
set -euo pipefail
cd "$(dirname "$0")/../.."

work="${SWITCHYARD_TRAIN_DIR:-$PWD/.cache/train}"
mkdir -p "$work"
model_dir=$(bash scripts/models.sh)
python3 -m pip download -q --disable-pip-version-check --no-deps -d "$work" \
  evals==3.0.1.post1 bigbench==1.0.0 reasoning-gym==0.1.25 >&2
python3 tools/classifier/build_dataset.py \
  "$work"/evals-3.0.1.post1-*.whl "$work"/bigbench-1.0.0.tar.gz \
  "$work"/reasoning_gym-0.1.25-*.whl "$work/prompts.jsonl"
cargo run -q --release --locked -p tools --bin train-classifier -- \
  --model-dir "$model_dir" --data "$work/prompts.jsonl" --max-tokens 48 \
  --out classifier/heads/builtin.json --report classifier/heads/REPORT.md \
  --command "bash tools/classifier/train.sh"
