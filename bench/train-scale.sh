#!/usr/bin/env bash
# Training at fleet scale, section train-scale of BENCHMARKS.md: `harbinger train` on
# synthetic fleets of 1,000, 3,000 and 10,000 hosts x 7 days x 8 metrics at 1-minute steps
# (about 80 M, 242 M and 806 M samples), one run each, wall time and peak memory (max RSS)
# measured by /usr/bin/time. The fleets are written by `harbinger synth` (a window of time
# at a time) into BENCH_WORK (default: a fresh temporary directory; about 12 GB of disk
# for the three). Each size is trained twice: as it comes, and under a memory budget
# (BUDGET, default 4GiB: `--memory-budget`, the fleet computed a block of hosts at a
# time), whose model must be the same. Usage: bench/train-scale.sh [HOSTS ...]
# (default: 1000 3000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
sizes="${*:-1000 3000 10000}"
budget="${BUDGET:-4GiB}"
# REPORT_ONLY=1 writes the tables from the runs already in BENCH_WORK.
for n in $sizes; do
  [ -n "${REPORT_ONLY:-}" ] && break
  if [ ! -f "$work/fleet$n/metrics.parquet" ]; then
    /usr/bin/time -f "%e %M" -o "$work/synth$n.time" "$bin" synth --out "$work/fleet$n" --hosts "$n" --days 7 --seed 11 > "$work/synth$n.txt"
  fi
  /usr/bin/time -f "%e %M" -o "$work/train$n.time" "$bin" --log-level warn train --data "$work/fleet$n" --out "$work/model$n" > "$work/train$n.txt"
  /usr/bin/time -f "%e %M" -o "$work/budget$n.time" "$bin" --log-level warn train --data "$work/fleet$n" --out "$work/budget$n" --memory-budget "$budget" > "$work/budget$n.txt"
done
{
  echo "### Training at fleet scale"
  echo
  echo "Script: \`bench/train-scale.sh\` — $date, $machine.  "
  echo "Data: \`harbinger synth --hosts N --days 7 --seed 11\` (8 metrics at 1-minute steps).  "
  echo "Command: \`harbinger train --data DIR --out MODEL\`, one run per size: a first pass over \`metrics.parquet\` a row group at a time (span, step, metric ranges, seasons), then the features computed as the file is read again; only rows not yet consumed, each host's feature state and the kept rows (training rows sampled to at most 120,000 negatives; held-back rows up to 2,000,000, beyond that a share of the hosts by a hash of the id, each over its whole held-back period) are held. Peak memory is the process's maximum RSS (\`/usr/bin/time\`). The peer is the same job at the smallest size: time and memory per host should stay flat as the fleet grows. Target: 10,000 hosts within a 16 GiB budget, time linear in the fleet."
  echo
  python3 - "$work" "$budget" $sizes <<'PY'
import json, sys, pathlib
w = pathlib.Path(sys.argv[1]); budget = sys.argv[2]; sizes = [int(s) for s in sys.argv[3:]]
print("| hosts | samples | file | synth (s) | train wall (s) | features (s) | fit (s) | peak memory | per host | time vs smallest, per host | training / held-back rows | held-back PR-AUC |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
base = None
for n in sizes:
    secs, kb = (w / f"train{n}.time").read_text().split()
    secs, kb = float(secs), int(kb)
    st = w / f"synth{n}.time"
    synth = st.read_text().split()[0] if st.exists() else "n/a"
    card = json.loads((w / f"model{n}" / "model.json").read_text())["card"]
    f, fit, _ = card["seconds"]
    size = (w / f"fleet{n}" / "metrics.parquet").stat().st_size
    rows = (w / f"synth{n}.txt").read_text().split(" metric rows")[0].split(", ")[-1] if (w / f"synth{n}.txt").exists() else "n/a"
    per_host = secs / n
    if base is None:
        base = per_host
    print(f"| {n:,} | {int(rows):,} | {size / 2**30:.2f} GiB | {synth} | **{secs:.1f}** | {f:.1f} | {fit:.1f} | **{kb / 2**20:.2f} GiB** | {kb / n:.0f} KiB | {per_host / base:.2f}x | {card['train_rows']:,} / {card['holdout_rows']:,} | {card['learners'][0]['pr_auc']:.3f} |")
print()
print(f"Under a memory budget: the same command with `--memory-budget {budget}`; the blocks are those `train` reports (the first: the 1,000 reference hosts; each later one sized by what the blocks before it took, their resident memory watched while they ran; the first block spills the other hosts' rows to disk, zstd-compressed, as it reads the file, and each later block reads its own); the model is compared with the one trained without a budget above (same fitted model: the hash in its version, learner, calibration and alert policy equal).")
print()
print("| hosts | budget | blocks (largest) | train wall (s) | features (s) | peak memory | within budget | same model |")
print("|---|---|---|---|---|---|---|---|")
for n in sizes:
    secs, kb = (w / f"budget{n}.time").read_text().split()
    secs, kb = float(secs), int(kb)
    mem = [l for l in (w / f"budget{n}.txt").read_text().splitlines() if l.strip().startswith("memory")][0]
    blocks = mem.split("features in ")[1].split(", budget")[0]
    a = json.loads((w / f"budget{n}" / "model.json").read_text())
    b = json.loads((w / f"model{n}" / "model.json").read_text())
    limit = float(budget.lower().replace("gib", "")) * 2**30
    # The version is the training time, then a hash of the fitted parameters.
    same = a['version'].split('-')[-1] == b['version'].split('-')[-1] and all(a[f] == b[f] for f in ('learner', 'calibration', 'policy'))
    print(f"| {n:,} | {budget} | {blocks} | **{secs:.1f}** | {a['card']['seconds'][0]:.1f} | **{kb / 2**20:.2f} GiB** | {'yes' if kb * 1024 <= limit else 'NO'} | {'yes' if same else 'NO'} |")
PY
} | tee "$work/scale.md"
python3 scripts/update_benchmarks.py train-scale "$work/scale.md"
