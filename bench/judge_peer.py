#!/usr/bin/env python3
"""The peer of crates/plan/examples/judge_bench.rs: the same canary judgement with scipy.

usage: judge_peer.py [RUNS]

Builds the same data as the Rust example (10 KPIs, 10,000 samples per stack, xorshift64*
with the same seeds and the same expressions, so the values are identical) and times, per
run, the judgement the way a script would write it: per KPI, drop the non-finite values,
take both medians (numpy), run `scipy.stats.mannwhitneyu(canary, baseline,
use_continuity=True, method="asymptotic", alternative=...)` in the KPI's bad direction,
and apply the same verdict rule (p < alpha and the median worse by more than 5 %).

Prints JSON on stdout: median, minimum, maximum and every run in ms, the versions, and
the number of failing KPIs and the sum of the U statistics, which must equal the Rust
example's.
"""
import json
import platform
import sys
import time

import numpy as np
import scipy
from scipy.stats import mannwhitneyu

KPIS = 10
SAMPLES = 10_000
ALPHA = 0.05
TOLERANCE = 0.05
M64 = (1 << 64) - 1


def uniform(seed, n):
    """xorshift64*, as in the Rust example: values in [0, 1)."""
    s = ((seed * 0x9E3779B97F4A7C15) & M64) | 1
    out = np.empty(n)
    for i in range(n):
        s ^= s >> 12
        s ^= (s << 25) & M64
        s ^= s >> 27
        out[i] = (((s * 0x2545F4914F6CDD1D) & M64) >> 11) / float(1 << 53)
    return out


def samples(k, canary):
    u = uniform(2 * k + 1 + int(canary), SAMPLES)
    if k % 4 == 3:
        return np.floor(u * 20.0)
    scale = 1.1 if canary and k in (1, 6) else 1.0
    return 100.0 * (k + 1) * (1.0 + u * u) * scale


def judge(data):
    failing, u_sum = 0, 0.0
    for k, (base, can) in enumerate(data):
        base = base[np.isfinite(base)]
        can = can[np.isfinite(can)]
        bm, cm = np.median(base), np.median(can)
        higher_is_worse = k % 3 != 2
        res = mannwhitneyu(can, base, use_continuity=True, method="asymptotic",
                           alternative="greater" if higher_is_worse else "less")
        # scipy reports U of the first sample for every alternative.
        u_sum += float(res.statistic)
        worse_by = cm - bm if higher_is_worse else bm - cm
        if res.pvalue < ALPHA and worse_by > TOLERANCE * abs(bm):
            failing += 1
    return failing, u_sum


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    data = [(samples(k, False), samples(k, True)) for k in range(KPIS)]
    judge(data)  # warm-up: imports and caches
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = judge(data)
        times.append((time.perf_counter() - t) * 1e3)
    s = sorted(times)
    print(json.dumps({
        "median_ms": s[len(s) // 2],
        "min_ms": s[0],
        "max_ms": s[-1],
        "runs_ms": times,
        "failing": result[0],
        "u_sum": result[1],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }))


if __name__ == "__main__":
    main()
