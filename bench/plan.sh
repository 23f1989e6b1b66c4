#!/usr/bin/env bash
# Shadow planning time on one core (`taskset -c 0`): the pure planner on a synthetic fleet of
# 10,000 hosts and 50,000 resources with 500 hosts entering the alerting state at once
# (crates/plan/examples/plan_bench.rs). Writes the "plan-1core" section of BENCHMARKS.md.
# There is no peer to compare with: the figure is checked against the target (< 100 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-plan --example plan_bench
runs="${1:-15}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
{
  echo "### Shadow planning, one core"
  echo
  echo "Script: \`bench/plan.sh $*\` — $(date -u +%Y-%m-%d), $(nproc) cores, pinned to one (\`taskset -c 0\`)  "
  echo "Target: all shadows placed and queued in < 100 ms. No peer system plans shadows; none is compared."
  echo
  echo '```'
  taskset -c 0 "$CARGO_TARGET_DIR/release/examples/plan_bench" "$runs"
  echo '```'
} | tee "$out"
python3 scripts/update_benchmarks.py plan-1core "$out"
