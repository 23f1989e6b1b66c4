#!/usr/bin/env bash
# Soak of `harbinger serve` (`harbinger bench soak`): the server as a child process with the
# built-in default model, driven for MINUTES (default 5) at 50 requests/s with valid remote
# writes, scoring reads (gRPC and HTTP) and a fixed share of faults (disconnects, oversized
# and corrupt bodies, year-9999 samples, over-long keys, skewed clocks, new hosts past
# store.max_series, slow clients, large bodies), its RSS sampled throughout.
# Writes the "soak" section of RELIABILITY.md (also when the soak fails: the section says
# why), then exits with the soak's status. Extra arguments go to `bench soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
minutes="${1:-5}"
shift || true
cargo build --release -p harbinger-cli
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
"$CARGO_TARGET_DIR/release/harbinger" --log-level warn bench soak --minutes "$minutes" "$@" | tee "$out" || status=$?
if [ -s "$out" ]; then python3 scripts/update_benchmarks.py soak "$out" RELIABILITY.md; fi
exit "$status"
