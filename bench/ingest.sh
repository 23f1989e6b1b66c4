#!/usr/bin/env bash
# Ingest benchmark: Parquet load, remote-write decode+store, and remote-write over HTTP
# against a real Prometheus in the same run. Runs twice: on both cores, and pinned to one
# core with `taskset -c 0` (harbinger, its client and Prometheus all on that core).
# Writes the "ingest-2cores" and "ingest-1core" sections of BENCHMARKS.md.
# Extra arguments go to `harbinger bench ingest` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
command -v prometheus >/dev/null 2>&1 || {
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
}
cargo build --release --workspace
bin="$CARGO_TARGET_DIR/release/harbinger"
prom="$(command -v prometheus)"

run() {
  local section="$1" title="$2"; shift 2
  local out; out="$(mktemp)"
  {
    echo "### $title"
    echo
    echo "Script: \`bench/ingest.sh $*\`${WRAP:+ — run under \`$WRAP\`}  "
    ${WRAP:-} "$bin" --log-level warn bench ingest --prometheus "$prom" "$@"
  } | tee "$out"
  python3 scripts/update_benchmarks.py "$section" "$out"
}

WRAP="" run ingest-2cores "Ingest, both cores" "$@"
WRAP="taskset -c 0" run ingest-1core "Ingest, one core" "$@"
