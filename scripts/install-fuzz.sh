#!/usr/bin/env bash
# Installs what `make fuzz` needs and the Rust toolchain does not bring: cargo-fuzz, and a C++
# compiler for the libFuzzer runtime that libfuzzer-sys builds from source.
# Idempotent: installs only what is missing. Debian/Ubuntu (apt) and crates.io.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v c++ >/dev/null 2>&1; then
  echo "installing: g++"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

if ! "${CARGO:-cargo}" fuzz --version >/dev/null 2>&1; then
  echo "installing: cargo-fuzz $CARGO_FUZZ_VERSION"
  "${CARGO:-cargo}" install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
