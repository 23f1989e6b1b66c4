#!/usr/bin/env bash
# Change safety at scale, in process (`harbinger bench change --peer`): what-if of a change
# to 1,000 of 10,000 generated resources (graph + cycle check, update stack, change risk,
# rollback simulation), with and without a change log, next to the same analysis in Python
# (bench/change_peer.py: graphlib, jsonpatch when importable) on the same files; then
# snapshot take/restore and `file` resource write/read of 10,000 small states.
# Writes the "change" section of BENCHMARKS.md. Extra arguments go to `bench change`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-cli
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
# The program prints the section's title first; the script line goes under it.
"$CARGO_TARGET_DIR/release/harbinger" --log-level warn bench change --peer "$@" |
  awk -v s="Script: \`bench/change.sh $*\` — $(date -u +%F), $(nproc) cores  " 'NR == 3 { print s } { print }' | tee "$out"
python3 scripts/update_benchmarks.py change "$out"
