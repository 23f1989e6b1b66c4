#!/usr/bin/env bash
# Runs every harbinger test. Installs (idempotently) what the tests need first:
#   - Debian: prometheus (a real Prometheus remote-writes into harbinger in a test)
# Build output goes to $CARGO_TARGET_DIR (default ~/.cache/harbinger-target), outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
apt_needed=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || apt_needed+=(prometheus)
if [ "${#apt_needed[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${apt_needed[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${apt_needed[@]}"
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
