#!/usr/bin/env bash
# Builds the cargo-fuzz targets on the stable toolchain and runs each for a
# bounded time (default 20 s). Installs cargo-fuzz when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz@0.13.1
fi
cd fuzz
# Seeds: the example policies, and their compiled snapshots when policyc is built.
mkdir -p seeds/yaml_compile seeds/snapshot_load
cp ../examples/*.yaml seeds/yaml_compile/
if [ -x ../target/debug/policyc ]; then
  for f in ../examples/*.yaml; do
    out="seeds/snapshot_load/$(basename "$f" .yaml).snap"
    SWITCHYARD_KEY=sk-sy-fuzz-seed-0123456789 ../target/debug/policyc compile "$f" -o "$out.tmp" >/dev/null 2>&1 \
      && { printf '\000' | cat - "$out.tmp" > "$out"; rm -f "$out.tmp"; } || true
  done
fi
# Seeds for the translators from the recorded provider traffic, when the
# conformance corpus is beside the checkout.
corpus=../../shared/conformance
if [ -d "$corpus" ]; then
  mkdir -p seeds/client_request seeds/request_translate seeds/response_translate seeds/stream_translate seeds/sse_parse
  for f in "$corpus"/*/request_*.json "$corpus"/*/*.request.json; do
    [ -f "$f" ] || continue
    cp "$f" seeds/client_request/
    { printf '\000m\000'; cat "$f"; } > "seeds/request_translate/$(basename "$f")"
  done
  for f in "$corpus"/*/response_*.json "$corpus"/*/error_*.json; do
    [ -f "$f" ] && { printf '\000'; cat "$f"; } > "seeds/response_translate/$(basename "$f")"
  done
  for f in "$corpus"/*/*.sse "$corpus"/*/*.jsonl; do
    [ -f "$f" ] || continue
    { printf '\007'; cat "$f"; } > "seeds/stream_translate/$(basename "$f")"
    { printf '\003'; cat "$f"; } > "seeds/sse_parse/$(basename "$f")"
  done
fi
# -s none: no sanitizer, so no nightly toolchain is needed.
cargo fuzz build -O -s none
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  log="$(mktemp)"
  mkdir -p "seeds/$target"
  if cargo fuzz run -O -s none "$target" "corpus/$target" seeds/"$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" || true
  else
    tail -n 60 "$log"
    echo "fuzz: $target FAILED (crash input saved under fuzz/artifacts/$target)" >&2
    exit 1
  fi
  rm -f "$log"
done
