#!/usr/bin/env bash
# Failover, end to end on real software (`harbinger bench failover`): `harbinger demo`
# with a SIGKILLed primary and with a cut link (network namespaces when run as root), next
# to HAProxy's own health checks (a standby always running, default check settings) and
# Redis Sentinel (down-after-milliseconds 1 s and its 30 s default), in the same run.
# Needs haproxy and redis-server (scripts/test.sh installs them). Writes the "failover"
# section of BENCHMARKS.md. Extra arguments go to `bench failover` (--runs, --sentinel-default-runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-cli
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$CARGO_TARGET_DIR/release/harbinger" --log-level error bench failover "$@" | tee "$out"
python3 scripts/update_benchmarks.py failover "$out"
