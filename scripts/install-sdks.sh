#!/usr/bin/env bash
# Installs the official OpenAI and Anthropic Python SDKs, at the versions
# crates/proxy/tests/sdk/requirements.txt pins, into .venv (the interpreter the SDK test runs).
# Idempotent: does nothing when .venv already holds exactly those requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=crates/proxy/tests/sdk/requirements.txt
stamp="$venv/.requirements"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
echo "installing: the OpenAI and Anthropic Python SDKs into $venv ($requirements)"
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian's python3 keeps venv (and ensurepip) in a package of its own.
  if command -v apt-get >/dev/null 2>&1; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3-venv >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
