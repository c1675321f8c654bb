#!/usr/bin/env bash
# Gateway vs direct-to-mock, interleaved in one run, with wrk (closed loop).
# Prints requests/s and latency percentiles for each, the added latency, and
# the gateway's RSS under load. Everything runs on 127.0.0.1 and stops itself.
#
#   bash bench/scripts/wrk_compare.sh            # defaults below
#   DURATION=10s ROUNDS=3 bash bench/scripts/wrk_compare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-5s}"
ROUNDS="${ROUNDS:-2}"
GW_THREADS="${GW_THREADS:-1}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -p engine -p tools --bins 2>&1 | tail -n 1

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(port); GW_PORT=$(port)
KEY="sk-sy-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

./target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" --record 0 --threads 1 2>/dev/null &
pids+=($!)
SWITCHYARD_KEY="$KEY" OPENAI_API_KEY=bench OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" RUST_LOG=warn \
  ./target/release/switchyard serve --policy examples/quickstart.yaml --listen "127.0.0.1:$GW_PORT" --threads "$GW_THREADS" 2>/dev/null &
GW_PID=$!
pids+=($GW_PID)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$GW_PORT/healthz" >/dev/null && break; sleep 0.1; done

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello benchmark"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

# wrk's latency lines look like "50%  123.00us"; print them in microseconds.
run() { # name url conns
  local out
  out=$(wrk -t1 -c"$3" -d"$DURATION" --latency -s "$work/post.lua" "$2/v1/chat/completions")
  local rps p50 p90 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  us() { awk -v q="$1" '$1==q { v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000} }' <<<"$out"; }
  p50=$(us 50%); p90=$(us 90%); p99=$(us 99%)
  errs=$(awk '/Non-2xx/ {print $4}' <<<"$out"); errs=${errs:-0}
  printf '| %-8s | %5s | %10s | %8s | %8s | %8s | %5s |\n' "$1" "$3" "$rps" "$p50" "$p90" "$p99" "$errs"
  echo "$1 $3 $rps $p50 $p90 $p99" >> "$work/results"
}

echo "| target   | conns | req/s      | p50 µs   | p90 µs   | p99 µs   | non-2xx |"
echo "|----------|-------|------------|----------|----------|----------|-------|"
rss_load=0
for _ in $(seq 1 "$ROUNDS"); do
  for c in 1 64; do
    run direct "http://127.0.0.1:$MOCK_PORT" "$c"
    run gateway "http://127.0.0.1:$GW_PORT" "$c"
    r=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")
    [ "$r" -gt "$rss_load" ] && rss_load=$r
  done
done
rss_now=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")
echo
awk -v rss="$rss_load" -v rssn="$rss_now" '
  { n[$1" "$2]++; rps[$1" "$2]+=$3; p50[$1" "$2]+=$4; p99[$1" "$2]+=$6 }
  END {
    for (c in a) {}
    split("1 64", cs, " ")
    for (i=1;i<=2;i++) { c=cs[i]; d="direct " c; g="gateway " c;
      printf "conns=%s: gateway %.0f req/s vs direct %.0f (ratio %.2f); added latency p50 %+.0f µs, p99 %+.0f µs (means of rounds)\n",
        c, rps[g]/n[g], rps[d]/n[d], (rps[g]/n[g])/(rps[d]/n[d]), p50[g]/n[g]-p50[d]/n[d], p99[g]/n[g]-p99[d]/n[d] }
    printf "gateway peak RSS %.1f MB, RSS after load %.1f MB\n", rss/1024, rssn/1024
  }' "$work/results"
echo "(wrk -t1, gateway threads=$GW_THREADS, mock threads=1, ${DURATION} per run, $ROUNDS rounds, all on $(nproc) cores)"
