#!/usr/bin/env bash
# Runs the gateway end to end on 127.0.0.1:8080 with examples/quickstart.yaml.
# Without OPENAI_API_KEY it starts the built-in mock provider and fronts it;
# with OPENAI_API_KEY it fronts the real OpenAI API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The classifier's model files (semantic routing); the gateway serves
# without them, skipping the rules that need them.
if model_dir=$(bash scripts/models.sh); then
  export SWITCHYARD_MODEL_DIR="$model_dir"
else
  echo "run: classifier model files unavailable; label and route rules will be skipped" >&2
fi

echo "run: building (release; the first build takes several minutes)"
cargo build --release --locked -p engine -p tools --bins

export SWITCHYARD_LISTEN="${SWITCHYARD_LISTEN:-127.0.0.1:8080}"
if [ -z "${SWITCHYARD_KEY:-}" ]; then
  SWITCHYARD_KEY="sk-sy-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  export SWITCHYARD_KEY
fi

# The gateway runs in the foreground so that Ctrl-C (SIGINT, Pingora's fast
# shutdown) reaches it; background jobs of a script ignore SIGINT. Helpers
# run in the background and are stopped on exit.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# Providers without a real key are pointed at the built-in mock provider,
# which speaks OpenAI's, Anthropic's and Gemini's wire formats.
mock_addr="${MOCK_LISTEN:-127.0.0.1:4010}"
mocked=()
if [ -z "${OPENAI_API_KEY:-}" ]; then
  export OPENAI_BASE_URL="http://$mock_addr/v1" OPENAI_API_KEY="mock-upstream-key"
  mocked+=(gpt-4o-mini)
fi
if [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  export ANTHROPIC_BASE_URL="http://$mock_addr" ANTHROPIC_API_KEY="mock-upstream-key"
  mocked+=(claude-sonnet-4-5)
fi
if [ -z "${GEMINI_API_KEY:-}" ]; then
  export GEMINI_BASE_URL="http://$mock_addr" GEMINI_API_KEY="mock-upstream-key"
  mocked+=(gemini-2.5-flash)
fi
if [ ${#mocked[@]} -gt 0 ]; then
  ./target/release/mock-provider --listen "$mock_addr" &
  pids+=($!)
  upstream="the built-in mock provider at http://$mock_addr for ${mocked[*]}"
else
  upstream="the real providers"
fi

./target/release/policyc check examples/quickstart.yaml
announce() {
for _ in $(seq 1 100); do
  curl -sf "http://$SWITCHYARD_LISTEN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<MSG

Switchyard is listening on http://$SWITCHYARD_LISTEN in front of $upstream.
Your client key: $SWITCHYARD_KEY

  curl http://$SWITCHYARD_LISTEN/v1/chat/completions \\
    -H "Authorization: Bearer $SWITCHYARD_KEY" -H "Content-Type: application/json" \\
    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'

Or with the OpenAI Python SDK (installed in .venv):

  .venv/bin/python -c "from openai import OpenAI; c = OpenAI(base_url='http://$SWITCHYARD_LISTEN/v1', api_key='$SWITCHYARD_KEY'); print(c.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'Hello!'}]).choices[0].message.content)"

Semantic routing: send "model": "auto" and read the x-switchyard-route* headers;
try prompts offline with: ./target/release/switchyard classify --policy examples/quickstart.yaml

Metrics: http://$SWITCHYARD_LISTEN/metrics   Health: http://$SWITCHYARD_LISTEN/healthz
Edit examples/quickstart.yaml and the gateway reloads it. Ctrl-C stops everything.
MSG
}
announce &
pids+=($!)

./target/release/switchyard serve --policy examples/quickstart.yaml
