#!/usr/bin/env python3
"""The peer of `harbinger bench change`: the same what-if, glued together in Python.

usage: change_peer.py DIR [--repeat N] [--model FILE]

DIR holds what `harbinger bench change --peer` (or `--emit DIR`) writes: template.json
(the change template), current.json (resource id -> current state) and log.json (the
change log). The analysis is the one `harbinger whatif` does, written the way someone
would script it: `graphlib.TopologicalSorter` for the order and the cycle check,
`jsonpatch.make_patch` for the diff when it is importable (a hand-written recursive diff
otherwise), the change-risk model from models/change-risk.json (logistic regression on the
same features), and the same rollback rules (reverse dependency stages, highest impact
first, durations and failure rates from the log, the restore simulated on copies).
Like a script would, it diffs only the resources that have a desired state.

Prints JSON on stdout: medians, p90, minimum and every run in ms, and the results (update
stack size, dependents, stages, risk) so the caller can check both did the same work.
"""
import argparse
import copy
import json
import math
import pathlib
import platform
import sys
import time
from graphlib import CycleError, TopologicalSorter

try:
    import jsonpatch
    import jsonpointer

    HAVE_JSONPATCH = True
except ImportError:  # the hand-written diff below
    HAVE_JSONPATCH = False

PARALLELISM = 4
MAGNITUDE_CAP = 2.0 * math.log(10.0)
STD_CLAMP = 20.0
DEFAULT_DURATION_MS = {"file": (20.0, 100.0), "redis": (50.0, 250.0)}
PRIOR_FAILURE = {"file": 0.01, "redis": 0.02}


def load(d):
    tpl = json.loads((d / "template.json").read_text())
    current = json.loads((d / "current.json").read_text())
    ids = set()
    for r in tpl["resources"]:
        if r["id"] in ids:
            raise ValueError(f"resource {r['id']!r} declared twice")
        ids.add(r["id"])
    for r in tpl["resources"]:
        for dep in r.get("depends_on", []):
            if dep not in ids or dep == r["id"]:
                raise ValueError(f"resource {r['id']!r}: bad depends_on {dep!r}")
    return tpl, current


# --- diff -------------------------------------------------------------------------------


def esc(k):
    return k.replace("~", "~0").replace("/", "~1")


def hand_diff(a, b, path="", out=None):
    """(path, op, from, to) for every leaf that differs; objects key by key, an object
    added or removed leaf by leaf. `None` stands for "absent"."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            hand_diff(a.get(k), b.get(k), f"{path}/{esc(k)}", out)
    elif a is None and isinstance(b, dict) and b:
        for k, v in b.items():
            hand_diff(None, v, f"{path}/{esc(k)}", out)
    elif b is None and isinstance(a, dict) and a:
        for k, v in a.items():
            hand_diff(v, None, f"{path}/{esc(k)}", out)
    elif a is None:
        out.append((path, "add", None, b))
    elif b is None:
        out.append((path, "remove", a, None))
    elif a != b or type(a) is not type(b):
        out.append((path, "replace", a, b))
    return out


def diff(a, b):
    if not HAVE_JSONPATCH:
        return hand_diff(a, b)
    ops = []
    for op in jsonpatch.make_patch(a, b).patch:
        before = jsonpointer.resolve_pointer(a, op["path"], None) if op["op"] != "add" else None
        ops.append((op["path"], op["op"], before, op.get("value")))
    return ops


# --- the analysis -----------------------------------------------------------------------


def graph(tpl):
    deps = {r["id"]: r.get("depends_on", []) for r in tpl["resources"]}
    depth = {}
    for n in TopologicalSorter(deps).static_order():  # raises CycleError
        depth[n] = max((depth[d] + 1 for d in deps[n]), default=0)
    rdeps = {n: [] for n in deps}
    for n, ds in deps.items():
        for d in ds:
            rdeps[d].append(n)
    return deps, rdeps, depth


def targets(tpl, current):
    out = {}
    for r in tpl["resources"]:
        desired = r.get("desired")
        if desired is None:
            continue
        outside = [k for k in desired if k != "content"]
        if outside:
            raise ValueError(f"{r['id']}: {outside} outside the change profile ['/content']")
        t = copy.deepcopy(current.get(r["id"], {}))
        if "content" in desired:
            t["content"] = copy.deepcopy(desired["content"])
        out[r["id"]] = t
    return out


def diffs(tgt, current):
    out = {}
    for rid, t in tgt.items():
        ops = diff(current.get(rid, {}), t)
        if ops:
            out[rid] = ops
    return out


def stages(per, depth):
    by = {}
    for rid in sorted(per):
        by.setdefault(depth[rid], []).append(rid)
    order = [by[k] for k in sorted(by)]
    stack = [(rid,) + op for stage in order for rid in stage for op in per[rid]]
    return order, stack


def reachable(rdeps, starts):
    seen = set(starts)
    todo = list(starts)
    while todo:
        for up in rdeps[todo.pop()]:
            if up not in seen:
                seen.add(up)
                todo.append(up)
    return seen


def dependents(rdeps, changed):
    return reachable(rdeps, changed) - set(changed)


def semver(s):
    s = s[1:] if s[:1] in ("v", "V") else s
    core = s.split("-")[0].split("+")[0]
    if not core:
        return None
    out = [0, 0, 0]
    for i, part in enumerate(core.split(".")):
        if not part.isdigit():
            return None
        if i < 3:
            out[i] = int(part)
    return out


def version_text(v):
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def bump(a, b):
    a, b = version_text(a) if a is not None else None, version_text(b) if b is not None else None
    if a is None and b is None or a == b:
        return 0
    if a is None or b is None:
        return 3
    x, y = semver(a), semver(b)
    if x is None or y is None or x[0] != y[0]:
        return 3
    return 2 if x[1] != y[1] else 1


def magnitude(a, b):
    num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if not (num(a) and num(b)):
        return None
    if a == b:
        return 0.0
    if (a > 0 and b > 0) or (a < 0 and b < 0):
        return min(abs(math.log(b / a)), MAGNITUDE_CAP)
    return MAGNITUDE_CAP


def risk(stack, crit, blast, model):
    vb, mag, res = 0, 0.0, set()
    for rid, path, _op, before, after in stack:
        res.add(rid)
        if path.rsplit("/", 1)[-1] == "version":
            vb = max(vb, bump(before, after))
        m = magnitude(before, after)
        if m is not None:
            mag = max(mag, m)
    values = [len(stack), len(res), vb, mag, max((crit[r] for r in res), default=0), blast, 1.0 if vb > 0 else 0.0, 0]
    z = model["intercept"]
    for v, mean, std, coef in zip(values, model["means"], model["stds"], model["coefficients"]):
        z += coef * max(-STD_CLAMP, min(STD_CLAMP, (v - mean) / std))
    return 1.0 / (1.0 + math.exp(-z))


def quantile(s, q):
    if not s:
        return 0.0
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def simulate(order, rdeps, kind, crit, current, tgt, log):
    # Reverse dependency stages; within a stage the highest impact first.
    # impact = criticality x (1 + dependents); reachable() counts the resource itself.
    impact = {rid: max(crit[rid], 1) * len(reachable(rdeps, [rid])) for stage in order for rid in stage}
    rollback = [sorted(stage, key=lambda r: (-impact[r], r)) for stage in reversed(order)]
    durations, applies, restores = {}, {}, {}
    for e in log:
        k = e.get("kind")
        if k is None:
            continue
        if e["step"] == "rollback":
            durations.setdefault(k, []).append(e["duration_ms"])
            n, f = restores.get(k, (0, 0))
            restores[k] = (n + 1, f + (e["outcome"] != "ok"))
        elif e["step"] == "verify" and e["outcome"] != "ok":
            n, f = restores.get(k, (0, 0))
            restores[k] = (n, f + 1)
        elif e["step"] == "apply":
            applies.setdefault(k, []).append(e["duration_ms"])
    est = {}
    for k in set(kind.values()):
        rec = durations.get(k) if len(durations.get(k, [])) >= 3 else applies.get(k) if len(applies.get(k, [])) >= 3 else None
        if rec:
            s = sorted(rec)
            est[k] = (quantile(s, 0.5), quantile(s, 0.9))
        else:
            est[k] = DEFAULT_DURATION_MS.get(k, (500.0, 3000.0))
    p50 = p90 = 0.0
    for stage in rollback:
        rounds = math.ceil(len(stage) / PARALLELISM)
        p50 += rounds * max(est[kind[r]][0] for r in stage)
        p90 += rounds * max(est[kind[r]][1] for r in stage)
    survive, needed, problems = 1.0, [], []
    for stage in order:
        for rid in stage:
            cur = current.get(rid, {})
            needed.append(f"snapshot of {rid} ({kind[rid]} kind, {len(json.dumps(cur, separators=(',', ':')))} bytes of state)")
            restored = copy.deepcopy(tgt[rid])
            if "content" in cur:
                restored["content"] = copy.deepcopy(cur["content"])
            else:
                restored.pop("content", None)
            ok = restored == cur
            if not ok:
                problems.append(rid)
            n, f = restores.get(kind[rid], (0, 0))
            rate = (f + 10.0 * PRIOR_FAILURE.get(kind[rid], 0.05)) / (n + 10.0)
            p = rate * (1.0 + crit[rid] / 3.0) + (0.0 if ok else 0.2)
            survive *= 1.0 - min(p, 1.0)
    return {"order": rollback, "p50_s": round(p50 / 1000.0, 3), "p90_s": round(p90 / 1000.0, 3), "risk": round(1.0 - survive, 3)}


def analyse(tpl, current, log, model):
    deps, rdeps, depth = graph(tpl)
    tgt = targets(tpl, current)
    per = diffs(tgt, current)
    order, stack = stages(per, depth)
    dep = dependents(rdeps, list(per))
    crit = {r["id"]: r.get("criticality", 1) for r in tpl["resources"]}
    kind = {r["id"]: r["kind"] for r in tpl["resources"]}
    score = risk(stack, crit, len(dep), model)
    rb = simulate(order, rdeps, kind, crit, current, tgt, log)
    return {"update_stack": len(stack), "dependents": len(dep), "apply_stages": len(order), "change_risk": score, "rollback": rb}


# --- timing -----------------------------------------------------------------------------


def stats(runs):
    s = sorted(runs)
    return {
        "median_ms": s[len(s) // 2],
        "p90_ms": s[max(math.ceil(0.9 * len(s)) - 1, 0)],
        "min_ms": s[0],
        "runs_ms": runs,
    }


def timed(repeat, f):
    runs, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        runs.append((time.perf_counter() - t) * 1e3)
    return runs, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=pathlib.Path)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--model", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent.parent / "models" / "change-risk.json")
    a = ap.parse_args()
    model = json.loads(a.model.read_text())
    log = json.loads((a.dir / "log.json").read_text())
    parse_runs, (tpl, current) = timed(a.repeat, lambda: load(a.dir))
    plain_runs, plain = timed(a.repeat, lambda: analyse(tpl, current, [], model))
    log_runs, with_log = timed(a.repeat, lambda: analyse(tpl, current, log, model))

    # Each part alone, with the log.
    g_runs, (deps, rdeps, depth) = timed(a.repeat, lambda: graph(tpl))
    t_runs, tgt = timed(a.repeat, lambda: targets(tpl, current))
    d_runs, per = timed(a.repeat, lambda: diffs(tgt, current))
    s_runs, (order, stack) = timed(a.repeat, lambda: stages(per, depth))
    b_runs, dep = timed(a.repeat, lambda: dependents(rdeps, list(per)))
    crit = {r["id"]: r.get("criticality", 1) for r in tpl["resources"]}
    kind = {r["id"]: r["kind"] for r in tpl["resources"]}
    r_runs, _ = timed(a.repeat, lambda: risk(stack, crit, len(dep), model))
    m_runs, _ = timed(a.repeat, lambda: simulate(order, rdeps, kind, crit, current, tgt, log))

    py = f"Python {platform.python_version()}"
    name = f"{py} + jsonpatch {jsonpatch.__version__}" if HAVE_JSONPATCH else f"{py}, hand-written diff"
    out = {
        "name": name,
        "python": py,
        "diff": f"`jsonpatch.make_patch` ({jsonpatch.__version__})" if HAVE_JSONPATCH else "a hand-written recursive diff (jsonpatch is not importable)",
        "parse": stats(parse_runs),
        "whatif_default": stats(plain_runs),
        "whatif_history": stats(log_runs),
        "parts_history": [
            {"part": "graph + cycle check", "stats": stats(g_runs)},
            {"part": "targets (desired over current)", "stats": stats(t_runs)},
            {"part": "diff (update stack per resource)", "stats": stats(d_runs)},
            {"part": "apply stages + update stack", "stats": stats(s_runs)},
            {"part": "dependents (blast radius)", "stats": stats(b_runs)},
            {"part": "baseline + change risk", "stats": stats(r_runs)},
            {"part": "rollback simulation", "stats": stats(m_runs)},
        ],
        "update_stack": plain["update_stack"],
        "dependents": plain["dependents"],
        "apply_stages": plain["apply_stages"],
        "change_risk": plain["change_risk"],
        "rollback_p50_s_default": plain["rollback"]["p50_s"],
        "rollback_p50_s_history": with_log["rollback"]["p50_s"],
        "rollback_risk_history": with_log["rollback"]["risk"],
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    try:
        main()
    except (CycleError, ValueError) as e:
        sys.exit(f"change_peer: {e}")
