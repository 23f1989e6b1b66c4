#!/usr/bin/env bash
# Shadow-stack rollback time on real software: `harbinger demo canary --bad-version --json`
# (HAProxy, version 1 and a bad version 2 of a small HTTP service, 400 GET/s) run N times
# (default 9); each run reports `rollback_ms`, from the failed judgement to every HAProxy
# weight change acknowledged (all traffic back on version 1), and the share version 2
# served. Also one healthy rollout (promotion) for its duration. Target: rollback <= 1 s.
# No peer runs here: Argo Rollouts and Flagger need Kubernetes. Needs haproxy
# (scripts/test.sh installs it). Writes the "canary" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/harbinger-target}"
cargo build --release -p harbinger-cli
runs="${1:-9}"
bin="$CARGO_TARGET_DIR/release/harbinger"
raw="$(mktemp)"
out="$(mktemp)"
trap 'rm -f "$raw" "$out"' EXIT
for _ in $(seq "$runs"); do
  "$bin" --log-level error demo canary --bad-version --json | tail -n 1 >>"$raw"
done
start=$(date +%s.%N)
"$bin" --log-level error demo canary --json | tail -n 1 >"$raw.ok"
end=$(date +%s.%N)
python3 - "$raw" "$raw.ok" "$start" "$end" "$runs" "$*" >"$out" <<'PY'
import datetime, json, os, statistics, sys
raw, ok, start, end, runs, args = sys.argv[1:]
bad = [json.loads(l) for l in open(raw)]
good = json.loads(open(ok).read())
os.remove(ok)
assert all(r["decision"] == "rolled_back" for r in bad), [r["decision"] for r in bad]
ms = [r["rollback_ms"] for r in bad]
share = [r["traffic_share_seen"] * 100 for r in bad]
print("### Shadow-stack rollback (canary)\n")
print(f"Script: `bench/canary.sh {args}`".rstrip() + f" — {datetime.date.today()}, {os.cpu_count()} cores  ")
print("Workload: `harbinger demo canary --bad-version --json`: HAProxy 2.6 in front of version 1 of a small HTTP service at 400 GET/s; "
      "version 2 (30 % of answers 500, +40 ms) started beside it as a shadow stack of 2 instances, sent 5 % of the traffic, judged every 2 s "
      "(Mann-Whitney U per KPI on HAProxy's statistics sampled every 200 ms).  ")
print("Measured: `rollback_ms`, from the failed judgement to every HAProxy weight change acknowledged (all new requests on version 1). "
      "Target ≤ 1 s. No peer: Argo Rollouts and Flagger need Kubernetes.\n")
print("| figure | median | min | max | runs |")
print("|---|---|---|---|---|")
print(f"| rollback, failed judgement → traffic on the live stack | {statistics.median(ms):.1f} ms | {min(ms):.1f} ms | {max(ms):.1f} ms | {len(ms)} |")
print(f"| share of answers version 2 served before the rollback | {statistics.median(share):.1f} % | {min(share):.1f} % | {max(share):.1f} % | {len(share)} |")
print(f"\nEvery run rolled back at judgement 1. A healthy version 2 in the same run: `{good['decision']}` after "
      f"{len(good['judgements'])} judgements (5 %, 25 %, 50 %, two each), {float(end) - float(start):.1f} s for the whole demo, "
      f"{good['traffic_share_seen'] * 100:.1f} % of the answers from version 2.")
PY
cat "$out"
python3 scripts/update_benchmarks.py canary "$out"
