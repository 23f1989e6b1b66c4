#!/usr/bin/env bash
# Canary judge time on one core (`taskset -c 0`): 10 KPIs with 10,000 samples per stack,
# i.e. 10 asymptotic Mann-Whitney U tests of 10,000 against 10,000 values plus medians and
# verdicts (crates/plan/examples/judge_bench.rs), next to the same judgement with scipy's
# `mannwhitneyu` and numpy's median on the same values in the same run (bench/judge_peer.py,
# in the bench venv of bench/venv.sh). Writes the "judge" section of BENCHMARKS.md.
# Usage: bench/judge.sh [RUNS] (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-plan --example judge_bench
BENCH_PY_IMPORTS="numpy, scipy"
BENCH_PY_PACKAGES="numpy scipy"
. bench/venv.sh
runs="${1:-15}"
out="$(mktemp)"
rust_out="$(mktemp)"
peer_out="$(mktemp)"
trap 'rm -f "$out" "$rust_out" "$peer_out"' EXIT
taskset -c 0 "$CARGO_TARGET_DIR/release/examples/judge_bench" "$runs" > "$rust_out"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 taskset -c 0 "$venv/bin/python" bench/judge_peer.py "$runs" > "$peer_out"
{
  echo "### Canary judge, one core"
  echo
  echo "Script: \`bench/judge.sh $*\` — $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), pinned to one (\`taskset -c 0\`)  "
  echo "Workload: 10 KPIs x 10,000 samples per stack (baseline and canary): per KPI the non-finite values dropped, both medians, a one-sided asymptotic Mann-Whitney U test (tie and continuity corrections) and the verdict. Same values on both sides (xorshift64*, fixed seeds).  "
  echo "Target: < 10 ms for the judgement. Peer: scipy \`mannwhitneyu(method=\"asymptotic\")\` + numpy \`median\` in Python, in the same run."
  echo
  echo '```'
  cat "$rust_out"
  echo '```'
  echo
  python3 - "$rust_out" "$peer_out" <<'PY'
import json, re, sys
rust = open(sys.argv[1]).read()
peer = json.load(open(sys.argv[2]))
m = re.search(r"median ([0-9.]+) ms, min ([0-9.]+) ms, max ([0-9.]+) ms over (\d+) runs \(([^)]*) ms\)", rust)
r_med, r_min, r_max = (float(m.group(i)) for i in (1, 2, 3))
runs = ", ".join(f"{t:.2f}" for t in peer["runs_ms"])
u_sum = float(re.search(r"sum of U ([0-9.e+]+)", rust).group(1))
failing = int(re.search(r"-> (\d+) failing", rust).group(1))
if u_sum != peer["u_sum"] or failing != peer["failing"]:
    sys.exit(f"the peer did other work: sum of U {peer['u_sum']} vs {u_sum}, failing {peer['failing']} vs {failing}")
print("| system | median | min | max | runs |")
print("|---|---|---|---|---|")
print(f"| harbinger `judge` | {r_med:.2f} ms | {r_min:.2f} ms | {r_max:.2f} ms | {m.group(5)} ms |")
print(f"| Python {peer['python']}, scipy {peer['scipy']}, numpy {peer['numpy']} | {peer['median_ms']:.2f} ms | {peer['min_ms']:.2f} ms | {peer['max_ms']:.2f} ms | {runs} ms |")
print(f"| **ratio scipy / harbinger** | **{peer['median_ms'] / r_med:.1f}x** | | | |")
print()
print(f"Both found {failing} failing KPIs and the same sum of U statistics ({u_sum:.0f}).")
PY
} | tee "$out"
python3 scripts/update_benchmarks.py judge "$out"
