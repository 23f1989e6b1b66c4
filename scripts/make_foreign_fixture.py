#!/usr/bin/env python3
"""Writes crates/dataset/testdata/foreign/: a contract-format dataset made with pandas and
pyarrow, not with harbinger, so the reader is tested against another tool's files.

It deliberately uses what other tools do: columns in another order, an extra column,
dictionary-encoded (categorical) strings, rows out of order, a duplicate, a NaN, a gap,
an extra file, and no resources.json or dataset.json.

Run: pip install pandas pyarrow && python3 scripts/make_foreign_fixture.py
"""
import json
import pathlib

import numpy as np
import pandas as pd

out = pathlib.Path(__file__).resolve().parent.parent / "crates/dataset/testdata/foreign"
out.mkdir(parents=True, exist_ok=True)

pd.DataFrame(
    {"host": ["web-1", "web-2"], "zone": ["eu-1a", "eu-1b"], "rack": ["", "r7"],
     "cpu_cores": [4, 8], "mem_gb": [16.0, 32.0], "owner": ["team-a", "team-b"]}
).to_csv(out / "hosts.csv", index=False)

t0 = 1_700_000_000_000
rows = []
for i in range(10):
    for h in ["web-1", "web-2"]:
        if h == "web-2" and i == 4:
            continue  # a gap
        rows.append({"value": 0.1 * i, "metric": "cpu_util", "unit": "ratio", "host": h, "timestamp": t0 + i * 60_000})
df = pd.DataFrame(rows)
df.loc[3, "value"] = np.nan                      # missing by contract
df = pd.concat([df, df.iloc[[5]]])               # a duplicate row
df = df.iloc[::-1].reset_index(drop=True)        # out of order
df["host"] = df["host"].astype("category")       # dictionary-encoded strings
df["metric"] = df["metric"].astype("category")
df.to_parquet(out / "metrics.parquet", engine="pyarrow", index=False)

with open(out / "events.jsonl", "w") as f:
    f.write(json.dumps({"ts": t0 + 120_000, "kind": "deploy_started", "host": "web-1", "ticket": "OPS-1"}) + "\n")
    f.write(json.dumps({"ts": t0 + 60_000, "kind": "config_changed", "host": "web-2"}) + "\n")
pd.DataFrame({"host": ["web-2"], "timestamp": [t0 + 600_000], "kind": ["oom"]}).to_csv(out / "failures.csv", index=False)
(out / "NOTES.txt").write_text("extra files are allowed and ignored\n")
print("wrote", out)
