#!/usr/bin/env bash
# Calibration of the change-risk model (`harbinger change-risk`): fitted on the first 70 %
# of datasets/fleet-train's deployment history by time, scored on the last 30 %, next to the
# base rate (always predicting the share of bad changes). Deterministic; a quality figure,
# not a speed one. Writes the "change-risk" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build -p harbinger-cli
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$CARGO_TARGET_DIR/debug/harbinger" --log-level warn change-risk --data datasets/fleet-train --out "$tmp/model.json" > "$tmp/out.txt"
python3 - "$tmp/model.json" "$(date -u +%F)" "$(nproc)" > "$tmp/section.md" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); c = m["calibration"]; s = m["summary"]
print("### Change-risk model, held-out calibration")
print()
print(f"Script: `bench/change-risk.sh` — {sys.argv[2]}, {sys.argv[3]} cores  ")
print("Command: `harbinger change-risk --data datasets/fleet-train --out FILE` (the model shipped as `models/change-risk.json`).")
print()
print(f"History: {s['rows']} labelled changes ({s['deploys']} deploys, {s['deploy_positives']} bad; {s['configs']} config changes, {s['config_positives']} bad); fitted on {c['train_rows']}, scored on the last {c['test_rows']} by time ({c['test_positives']} bad).")
print()
print("| figure | change-risk model | base rate (peer) |")
print("|---|---|---|")
print(f"| Brier score | **{c['brier']:.4f}** | {c['brier_reference']:.4f} |")
print(f"| log loss | {c['log_loss']:.3f} | |")
print(f"| AUC | **{c['auc']:.3f}** | 0.5 |")
print(f"| base rate | | {c['base_rate']:.4f} |")
print()
print("| predicted (bin mean) | observed rate | changes |")
print("|---|---|---|")
for b in c["reliability"]:
    print(f"| {b['mean_predicted']:.4f} | {b['observed_rate']:.3f} | {b['count']} |")
PY
cat "$tmp/section.md"
python3 scripts/update_benchmarks.py change-risk "$tmp/section.md"
