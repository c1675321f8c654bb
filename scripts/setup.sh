#!/usr/bin/env bash
# Installs what building and testing Switchyard needs on a fresh Debian
# machine: cmake (for libz-ng-sys), Redis and PostgreSQL servers (the
# cluster tests start their own), a Rust toolchain check, and a Python
# virtualenv with the SDK test clients. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import openai, anthropic, pytest, trustme, h2' >/dev/null 2>&1; then
  echo "setup: installing Python test clients (pip)"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
fi
