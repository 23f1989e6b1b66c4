#!/usr/bin/env python3
"""scikit-learn baseline on harbinger's own feature rows.

usage: sklearn_baseline.py FEATURES.parquet

Reads the rows written by `harbinger train --export-features` (`host`, `timestamp`, one column per feature,
NaN = missing, `label`, `holdout`), fits HistGradientBoostingClassifier on the training
rows and reports fit time and PR-AUC (average precision) on the held-back rows as JSON.
The same rows, the same split: only the learner differs.
"""
import json
import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score


def main() -> None:
    df = pd.read_parquet(sys.argv[1])
    feats = [c for c in df.columns if c not in ("host", "timestamp", "label", "holdout")]
    train, hold = df[~df["holdout"]], df[df["holdout"]]
    # Columns with no value at all (e.g. time to exhaustion of an unbounded metric) carry
    # nothing and trip the binner.
    feats = [c for c in feats if train[c].notna().any()]
    x, y = train[feats].to_numpy(np.float32), train["label"].to_numpy()
    xh, yh = hold[feats].to_numpy(np.float32), hold["label"].to_numpy()
    fits, aps = [], []
    for seed in range(3):
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
        t = time.perf_counter()
        clf.fit(x, y)
        fits.append(time.perf_counter() - t)
        aps.append(float(average_precision_score(yh, clf.predict_proba(xh)[:, 1])))
    print(json.dumps({
        "learner": "sklearn HistGradientBoostingClassifier(max_iter=200)",
        "train_rows": int(len(y)), "holdout_rows": int(len(yh)), "features": len(feats),
        "fit_seconds_median": float(np.median(fits)), "fit_seconds": fits,
        "pr_auc_median": float(np.median(aps)), "pr_auc": aps,
    }))


if __name__ == "__main__":
    main()
