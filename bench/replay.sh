#!/usr/bin/env bash
# Replay throughput and peak memory (`harbinger replay` on a synthetic fleet, next to
# `harbinger eval` on the same data, same run). Writes the "replay" section of BENCHMARKS.md.
# usage: bench/replay.sh [HOSTS] [DAYS] [RUNS]   (default 50 7 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-cli
hosts="${1:-50}" days="${2:-7}" runs="${3:-3}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
python3 bench/replay.py "$CARGO_TARGET_DIR/release/harbinger" "$hosts" "$days" "$runs" |
  awk -v s="Script: \`bench/replay.sh $*\` — $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))  " 'NR == 2 { print s } { print }' | tee "$out"
python3 scripts/update_benchmarks.py replay "$out"
