#!/usr/bin/env bash
# In-process scoring throughput of the live scorer, pinned to one core (`taskset -c 0`):
# `harbinger bench score` warms the scorer with datasets/fleet-sample and scores every host
# in batches of 100 (features, fleet signal, model, calibration, risk, top factors).
# Writes the "score-1core" section of BENCHMARKS.md. Extra arguments go to `bench score`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release --workspace
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
taskset -c 0 "$CARGO_TARGET_DIR/release/harbinger" --log-level warn bench score "$@" | tee "$out"
python3 scripts/update_benchmarks.py score-1core "$out"
