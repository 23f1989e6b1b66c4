#!/usr/bin/env python3
"""The peer for `harbinger bench grpc`: a Python grpcio server answering harbinger.v1
ScoreHosts (and Ping) with a scikit-learn model over the same number of features per host.

It does what a straightforward Python scoring service does: per request, gather each
host's feature vector, predict_proba with a fitted LogisticRegression, and return the
HostRisk messages with the top three factors (coefficient x standardised value). Feature
vectors are kept per host (cheaper than harbinger, which derives them from live windows).

usage: python_peer.py --port PORT --features N [--workers W]
Needs grpcio, grpcio-tools, numpy and scikit-learn (bench/grpc.sh installs them in a venv).
"""

import argparse
import hashlib
import pathlib
import sys
from concurrent import futures

import grpc
import numpy as np
from sklearn.linear_model import LogisticRegression

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))
from harbinger_client import generate  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--workers", type=int, default=8)
    a = p.parse_args()
    pb = generate(REPO / "proto")
    k = max(1, a.features)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, k))
    w = rng.normal(size=k)
    y = (x @ w + rng.normal(scale=0.5, size=4000) > 1.0).astype(int)
    model = LogisticRegression(max_iter=500).fit(x, y)
    coef = model.coef_[0]
    names = [f"feature_{i}" for i in range(k)]
    cache = {}

    def features(host):
        v = cache.get(host)
        if v is None:
            seed = int.from_bytes(hashlib.sha256(host.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=k)
            cache[host] = v
        return v

    class Risk(pb["risk_grpc"].RiskServiceServicer):
        def ScoreHosts(self, request, context):
            if not request.hosts:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "`hosts` is empty")
            xs = np.stack([features(h) for h in request.hosts])
            probs = model.predict_proba(xs)[:, 1]
            contrib = xs * coef
            out = []
            for i, h in enumerate(request.hosts):
                top = np.argsort(-np.abs(contrib[i]))[:3]
                out.append(pb["common"].HostRisk(
                    host=h, at_ms=0, risk=float(probs[i]), failure_probability=float(probs[i]),
                    horizon_ms=6 * 3_600_000, anomaly=0.0, confidence=1.0, criticality=0,
                    alerting=bool(probs[i] >= 0.5), model_version="sklearn-logistic",
                    factors=[pb["common"].Factor(name=names[j], value=float(xs[i, j]),
                                                 contribution=float(contrib[i, j])) for j in top]))
            return pb["risk"].ScoreHostsResponse(risks=out, model_version="sklearn-logistic")

    class Admin(pb["admin_grpc"].AdminServiceServicer):
        def Ping(self, request, context):
            return pb["admin"].PingResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=a.workers))
    pb["risk_grpc"].add_RiskServiceServicer_to_server(Risk(), server)
    pb["admin_grpc"].add_AdminServiceServicer_to_server(Admin(), server)
    server.add_insecure_port(f"127.0.0.1:{a.port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
