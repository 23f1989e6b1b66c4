#!/usr/bin/env bash
# The engine tick over 10,000 hosts, in process (`harbinger bench tick`): datasets/fleet-sample
# copied 500 times, the live scorer warmed with the last 6 h of metrics, then ticks of the
# engine (risk step for every host, the planner, journaled actions through the log actuator).
# Writes the "tick" section of BENCHMARKS.md. Extra arguments go to `bench tick`.
# There is no peer to compare with: the figure is checked against the target (< 50 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-cli
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$CARGO_TARGET_DIR/release/harbinger" --log-level warn bench tick "$@" | tee "$out"
python3 scripts/update_benchmarks.py tick "$out"
