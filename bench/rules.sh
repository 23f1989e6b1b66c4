#!/usr/bin/env bash
# The alerting-rules baseline, section `rules-baseline` of BENCHMARKS.md: the default
# Prometheus-style rule set (`harbinger eval --baseline prometheus-rules`) on the same eval
# fleets as `train-quality` (`harbinger synth --hosts 50 --days 7 --seed S`, S = 2 and 3),
# scored by the contract rule. Fleets are reused from $BENCH_WORK if present.
# Usage: bench/rules.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/common.sh

for seed in 2 3; do
  [ -d "$work/eval$seed" ] || "$bin" synth --out "$work/eval$seed" --hosts 50 --days 7 --seed "$seed" >/dev/null
  "$bin" --log-level warn eval --data "$work/eval$seed" --baseline prometheus-rules --out "$work/rules$seed" \
    | tee "$work/rules$seed.txt"
done
{
  echo "### Alerting-rules baseline (Prometheus-style)"
  echo
  echo "Script: \`bench/rules.sh\` — $date, $machine.  "
  echo "Fleets: \`harbinger synth --hosts 50 --days 7 --seed S\` for S = 2 and 3 (the eval fleets of \`train-quality\`).  "
  echo "Command: \`harbinger eval --data FLEET --baseline prometheus-rules --out OUT\` (1-minute virtual clock), scored by the contract rule like the model.  "
  echo "Rules (\`prometheus-rules.example.toml\`, chosen without looking at failure labels), each with \`for: 5m\`: cpu_util > 0.95, mem_util > 0.90, disk_util > 0.90, temperature_c > 85, error_rate > 5, net_latency_ms > 20, predict_linear(mem_util[1h], 4h) > 1, predict_linear(disk_util[6h], 24h) > 1; a host leaves the alerting state 30 min after its last firing rule."
  echo
  python3 - "$work" <<'PY'
import json, re, sys, pathlib
w = pathlib.Path(sys.argv[1])
print("| eval fleet | failures | recall (all) | recall (predictable) | precision | false alarms / host-day | lead median / p10 / p90 (min) |")
print("|---|---|---|---|---|---|---|")
for seed in (2, 3):
    s = json.loads((w / f"rules{seed}" / "summary.json").read_text())
    f = lambda v: "n/a" if v is None else f"{v:.3f}"
    print(f"| seed {seed} | {s['failures']} | {f(s['recall'])} | {f(s['recall_predictable'])} | {f(s['precision'])} | "
          f"{s['false_alarms_per_host_day']:.4f} | {f(s['lead_time_median_min'])} / {f(s['lead_time_p10_min'])} / {f(s['lead_time_p90_min'])} |")
print()
for seed in (2, 3):
    s = json.loads((w / f"rules{seed}" / "summary.json").read_text())
    kinds = ", ".join(f"{k} {v['predicted']}/{v['failures']}" for k, v in s["recall_by_kind"].items())
    started = re.findall(r"^  rule (\S+) +(\d+) alerts started", (w / f"rules{seed}.txt").read_text(), re.M)
    rules = ", ".join(f"{name} {n}" for name, n in started)
    print(f"Seed {seed}: {s['alerts']} alerts ({s['false_alarms']} false). Recall by kind: {kinds}. Alerts started by rule: {rules}.  ")
PY
} | tee "$work/rules.md"
python3 scripts/update_benchmarks.py rules-baseline "$work/rules.md"
echo "work files in $work"
