#!/usr/bin/env python3
"""Replay throughput and peak memory (`harbinger replay`), next to `harbinger eval` (the same
risk step without the engine) on the same synthetic fleet, in the same run. Prints the
"replay" section of BENCHMARKS.md as Markdown. usage: replay.py BIN HOSTS DAYS RUNS"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

binary, hosts, days, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def run(args):
    """Runs BIN args; returns (wall seconds, stdout)."""
    t = time.perf_counter()
    p = subprocess.Popen([binary, "--log-level", "warn", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    secs = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {err}")
    return secs, out


def peak(args):
    """Peak RSS (MiB) of one run, from the kernel's accounting of the child."""
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(binary, [binary, "--log-level", "warn", *args])
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(args)} failed (status {status})")
    return usage.ru_maxrss / 1024.0


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "fleet")
    run(["synth", "--out", data, "--hosts", str(hosts), "--days", str(days), "--step", "60s", "--seed", "7"])
    replay_s, eval_s, samples = [], [], None
    for i in range(runs):
        secs, out = run(["replay", "--data", data, "--out", os.path.join(tmp, f"replay{i}")])
        replay_s.append(secs)
        m = re.search(r"(\d+) ticks, (\d+) samples", out)
        samples = int(m.group(2)) if m else samples
        secs, _ = run(["eval", "--data", data, "--out", os.path.join(tmp, f"eval{i}")])
        eval_s.append(secs)
    replay_rss = peak(["replay", "--data", data, "--out", os.path.join(tmp, "replay-rss")])
    eval_rss = peak(["eval", "--data", data, "--out", os.path.join(tmp, "eval-rss")])
    decisions = sum(1 for _ in open(os.path.join(tmp, "replay0", "decisions.jsonl")))

r, e = statistics.median(replay_s), statistics.median(eval_s)
print(f"### Replay, {hosts} hosts x {days} days, 1-minute steps")
print()
print(f"Fleet: `harbinger synth --hosts {hosts} --days {days} --step 60s --seed 7`: {samples:,} samples, {decisions} decisions taken by the engine.")
print(f"Median of {runs} runs, wall clock of the whole command (loading the dataset, the serve pipeline on a virtual clock,")
print("writing alerts.csv, decisions.jsonl, summary.json, risk.csv and report.html); peak RSS of one more run.")
print()
print("| command | median | samples/s end to end | peak RSS |")
print("|---|---|---|---|")
print(f"| `harbinger replay` (serve's engine: store, risk tick, planner, journaled log actuator, snapshots; the live scorer fed an hour of ticks at a time) | **{r:.2f} s** {sorted(round(x, 1) for x in replay_s)} | **{samples / r / 1e6:.2f} M** | {replay_rss:.0f} MiB |")
print(f"| `harbinger eval` (same risk step, planner copy without the engine; the in-run comparison) | {e:.2f} s {sorted(round(x, 1) for x in eval_s)} | {samples / e / 1e6:.2f} M | {eval_rss:.0f} MiB |")
print()
verdict = "holds" if samples / r >= 3e6 else "does not hold"
print(f"Target (issue: replay): ≥ 3 M samples/s end to end: **{verdict}** ({samples / r / 1e6:.2f} M/s; replay takes {r / e:.1f}x the time of eval).")
