#!/usr/bin/env python3
"""Writes the named incident recordings under datasets/incidents/ deterministically.

Each recording is a dataset directory in the contract format (hosts.csv,
resources.json, metrics.csv, events.jsonl, failures.csv, dataset.json): 8 hosts in
two zones, one day at a 1-minute step starting 2023-11-14T00:00:00Z, five metrics
(cpu_util, mem_util, error_rate, temperature_c, net_latency_ms), and one incident:

  memory-leak        h03's mem_util ramps from 15:00 to an oom failure at 20:00
  bad-deploy         api-h02 1.4.0 -> 1.5.0 at 12:00, error_rate and latency creep up,
                     failure bad_deploy at 15:00, rolled_back at 15:05, recovered 15:20
  thermal            h05's temperature climbs from 14:00 to a thermal failure at 18:00
  fleet-false-alarm  every host's cpu spikes together 13:00-13:20 (a batch job); no failure

Standard library only; the same script gives byte-identical files.
Usage: python3 scripts/make_incidents.py [OUT_DIR]   (default datasets/incidents)
"""

import json
import math
import os
import random
import sys

START = 1699920000000  # 2023-11-14T00:00:00Z
STEP = 60_000
STEPS = 24 * 60
HOSTS = [f"h{i:02d}" for i in range(1, 9)]
METRICS = ["cpu_util", "mem_util", "error_rate", "temperature_c", "net_latency_ms"]


def at(hour, minute=0):
    return START + (hour * 60 + minute) * STEP


def baseline(rng, host_index, t):
    """Healthy values of one host at time t (ms)."""
    day = 2 * math.pi * ((t - START) / 86_400_000.0)
    cpu = 0.30 + 0.10 * math.sin(day - 1.0 + host_index * 0.2) + rng.gauss(0, 0.03)
    cpu = min(max(cpu, 0.01), 0.99)
    return {
        "cpu_util": cpu,
        "mem_util": min(max(0.45 + 0.02 * host_index / 8 + rng.gauss(0, 0.01), 0.0), 1.0),
        "error_rate": abs(0.5 + rng.gauss(0, 0.2)),
        "temperature_c": 52 + 10 * cpu + rng.gauss(0, 0.6),
        "net_latency_ms": abs(2.0 + rng.gauss(0, 0.3)),
    }


def ramp(t, t0, t1):
    """0 before t0, 1 after t1, linear in between."""
    if t <= t0:
        return 0.0
    if t >= t1:
        return 1.0
    return (t - t0) / (t1 - t0)


def incident_memory_leak(h, t, v):
    if h == "h03":
        r = ramp(t, at(15), at(20))
        v["mem_util"] = min(v["mem_util"] + r * (0.985 - v["mem_util"]), 1.0)
        if r > 0.8:  # swapping
            v["cpu_util"] = min(v["cpu_util"] + (r - 0.8) * 2.0, 0.99)
            v["net_latency_ms"] += (r - 0.8) * 40
    return v


def incident_bad_deploy(h, t, v):
    if h == "h02" and at(12, 5) <= t < at(15):
        r = ramp(t, at(12, 5), at(15))
        v["error_rate"] += 25 * r * r
        v["net_latency_ms"] += 30 * r * r
    return v


def incident_thermal(h, t, v):
    if h == "h05":
        r = ramp(t, at(14), at(18))
        v["temperature_c"] += 40 * (math.exp(3 * r) - 1) / (math.exp(3) - 1)
        if r > 0.7:  # throttling
            v["cpu_util"] = min(v["cpu_util"] + (r - 0.7), 0.99)
    return v


def incident_false_alarm(h, t, v):
    if at(13) <= t < at(13, 20):
        v["cpu_util"] = min(0.93 + (hash_int(h, t) % 5) / 100, 0.99)
        v["temperature_c"] += 8
        v["net_latency_ms"] += 3
    return v


def hash_int(h, t):
    return (int(h[1:]) * 7919 + (t // STEP) * 104729) % 1_000_003


INCIDENTS = {
    "memory-leak": {
        "fn": incident_memory_leak,
        "down": [("h03", at(20), None)],
        "failures": [("h03", at(20), "oom")],
        "events": [
            {"ts": at(9), "kind": "deploy_started", "deployment": "d-7", "resource": "api-h06", "host": "h06", "from": "1.4.0", "to": "1.4.1"},
            {"ts": at(9, 3), "kind": "deploy_succeeded", "deployment": "d-7", "resource": "api-h06", "host": "h06", "from": "1.4.0", "to": "1.4.1"},
        ],
        "notes": "h03's memory leaks from 15:00 (mem_util 0.45 -> 0.985, swapping at the end) until an oom failure at 20:00; h03 reports nothing after it.",
    },
    "bad-deploy": {
        "fn": incident_bad_deploy,
        "down": [("h02", at(15), at(15, 20))],
        "failures": [("h02", at(15), "bad_deploy")],
        "events": [
            {"ts": at(12), "kind": "deploy_started", "deployment": "d-12", "resource": "api-h02", "host": "h02", "from": "1.4.0", "to": "1.5.0",
             "changes": [{"path": "/config/pool_size", "from": 16, "to": 64}]},
            {"ts": at(12, 5), "kind": "deploy_succeeded", "deployment": "d-12", "resource": "api-h02", "host": "h02", "from": "1.4.0", "to": "1.5.0"},
            {"ts": at(15, 5), "kind": "rolled_back", "deployment": "d-12", "resource": "api-h02", "host": "h02", "from": "1.5.0", "to": "1.4.0"},
            {"ts": at(15, 20), "kind": "host_recovered", "host": "h02"},
        ],
        "notes": "api-h02 is deployed 1.4.0 -> 1.5.0 at 12:00 (pool_size 16 -> 64); error_rate and latency creep up until h02 stops serving at 15:00 (bad_deploy); rolled back at 15:05, back at 15:20.",
    },
    "thermal": {
        "fn": incident_thermal,
        "down": [("h05", at(18), None)],
        "failures": [("h05", at(18), "thermal")],
        "events": [],
        "notes": "h05's temperature climbs from 14:00 (about 55 C to 95 C, throttling at the end) until a thermal failure at 18:00; h05 reports nothing after it.",
    },
    "fleet-false-alarm": {
        "fn": incident_false_alarm,
        "down": [],
        "failures": [],
        "events": [
            {"ts": at(12, 58), "kind": "config_changed", "resource": "batch-1", "host": "h01",
             "changes": [{"path": "/config/schedule", "from": "02:00", "to": "13:00"}]},
        ],
        "notes": "every host's cpu spikes to about 0.95 together from 13:00 to 13:20 (a batch job moved to 13:00); nothing fails.",
    },
}


def fmt(x):
    s = f"{x:.4f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def write_one(out, name, spec, seed):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    rng = random.Random(seed)
    with open(os.path.join(d, "hosts.csv"), "w", newline="\n") as f:
        f.write("host,zone,rack,cpu_cores,mem_gb\n")
        for i, h in enumerate(HOSTS):
            zone = "z1" if i < 4 else "z2"
            f.write(f"{h},{zone},{zone}-r{i % 2 + 1},16,64\n")
    resources = []
    for i, h in enumerate(HOSTS):
        resources.append({
            "id": f"api-{h}", "kind": "service", "host": h, "criticality": 2, "cpu_cores": 2.0, "mem_gb": 4.0,
            "depends_on": [], "state": {"version": "1.4.0", "config": {"pool_size": 16}},
        })
    resources.append({"id": "batch-1", "kind": "service", "host": "h01", "criticality": 0, "cpu_cores": 1.0, "mem_gb": 2.0,
                      "depends_on": [], "state": {"version": "3.1.0", "config": {"schedule": "02:00"}}})
    with open(os.path.join(d, "resources.json"), "w", newline="\n") as f:
        json.dump(resources, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "metrics.csv"), "w", newline="\n") as f:
        f.write("timestamp,host,metric,value\n")
        for k in range(STEPS):
            t = START + k * STEP
            for i, h in enumerate(HOSTS):
                v = spec["fn"](h, t, baseline(rng, i, t))
                if any(h == dh and t >= d0 and (d1 is None or t < d1) for dh, d0, d1 in spec["down"]):
                    continue
                for m in METRICS:
                    f.write(f"{t},{h},{m},{fmt(v[m])}\n")
    with open(os.path.join(d, "events.jsonl"), "w", newline="\n") as f:
        for e in sorted(spec["events"], key=lambda e: e["ts"]):
            f.write(json.dumps(e, separators=(", ", ": ")) + "\n")
    with open(os.path.join(d, "failures.csv"), "w", newline="\n") as f:
        f.write("host,timestamp,kind\n")
        for h, ts, kind in spec["failures"]:
            f.write(f"{h},{ts},{kind}\n")
    meta = {"name": f"incident-{name}", "start_ms": START, "end_ms": START + STEPS * STEP, "step_ms": STEP, "seed": seed,
            "notes": spec["notes"] + " Made by scripts/make_incidents.py."}
    with open(os.path.join(d, "dataset.json"), "w", newline="\n") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "datasets", "incidents")
    for seed, (name, spec) in enumerate(INCIDENTS.items(), start=1):
        write_one(out, name, spec, seed)
        print(f"wrote {os.path.join(out, name)}")


if __name__ == "__main__":
    main()
