#!/usr/bin/env bash
# Ingest benchmark: Parquet load, remote-write decode+store, and remote-write over HTTP
# against a real Prometheus in the same run. Writes the "ingest" section of BENCHMARKS.md.
# Extra arguments go to `harbinger bench ingest` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
command -v prometheus >/dev/null 2>&1 || {
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
}
cargo build --release -p harbinger-cli
out="$(mktemp)"
"$CARGO_TARGET_DIR/release/harbinger" --log-level warn bench ingest --prometheus "$(command -v prometheus)" "$@" | tee "$out"
python3 scripts/update_benchmarks.py ingest "$out"
