"""Python client for harbinger's gRPC API (package harbinger.v1).

The stubs are generated from the repository's proto/ with grpcio-tools at run time, so
the client always speaks the checked-in contract:

    from harbinger_client import Client
    with Client("127.0.0.1:50051", token=None, proto_dir="proto") as c:
        for r in c.score_hosts(["h001", "h002"]).risks:
            print(r.host, r.risk, r.failure_probability, r.model_version)

Needs `pip install grpcio grpcio-tools`.
"""

import atexit
import importlib
import os
import pathlib
import shutil
import sys
import tempfile

import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO_FILES = ["common", "risk", "ingest", "admin", "change"]


def generate(proto_dir=None, out_dir=None):
    """Compiles proto/harbinger/v1/*.proto into out_dir (by default a new temporary
    directory, removed when the interpreter exits) and returns the imported modules as a dict: {"common": common_pb2, ...,
    "risk_grpc": risk_pb2_grpc, ...}."""
    from grpc_tools import protoc

    proto_dir = pathlib.Path(proto_dir or REPO / "proto")
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="harbinger-pb-")
        atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    out_dir = pathlib.Path(out_dir)
    files = [str(proto_dir / "harbinger" / "v1" / f"{f}.proto") for f in PROTO_FILES]
    for f in files:
        if not os.path.exists(f):
            raise FileNotFoundError(f"{f} is missing: pass proto_dir= the repository's proto/ directory")
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(["grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}",
                      f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed ({rc}) on {proto_dir}")
    if str(out_dir) not in sys.path:
        sys.path.insert(0, str(out_dir))
    mods = {}
    for f in PROTO_FILES:
        mods[f] = importlib.import_module(f"harbinger.v1.{f}_pb2")
        if f != "common":
            mods[f + "_grpc"] = importlib.import_module(f"harbinger.v1.{f}_pb2_grpc")
    return mods


class Client:
    """Stubs for RiskService, IngestService, AdminService and ChangeService over one
    channel. A token, when given, is sent as `authorization: Bearer <token>` on every
    call."""

    def __init__(self, addr, token=None, proto_dir=None, root_certificates=None):
        self.pb = generate(proto_dir)
        if root_certificates is not None:
            self.channel = grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates))
        else:
            self.channel = grpc.insecure_channel(addr)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.risk = self.pb["risk_grpc"].RiskServiceStub(self.channel)
        self.ingest = self.pb["ingest_grpc"].IngestServiceStub(self.channel)
        self.admin = self.pb["admin_grpc"].AdminServiceStub(self.channel)
        self.change = self.pb["change_grpc"].ChangeServiceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.channel.close()

    def score_hosts(self, hosts, timeout=10.0):
        req = self.pb["risk"].ScoreHostsRequest(hosts=list(hosts))
        return self.risk.ScoreHosts(req, timeout=timeout, metadata=self.metadata)

    def explain_host(self, host, timeout=10.0):
        req = self.pb["risk"].ExplainHostRequest(host=host)
        return self.risk.ExplainHost(req, timeout=timeout, metadata=self.metadata)

    def watch_risk(self, threshold=0.0, hosts=(), interval_ms=0, min_change=0.0, timeout=None):
        req = self.pb["risk"].WatchRiskRequest(threshold=threshold, hosts=list(hosts),
                                               interval_ms=interval_ms, min_change=min_change)
        return self.risk.WatchRisk(req, timeout=timeout, metadata=self.metadata)

    def push_metrics(self, batches, timeout=30.0):
        """batches: iterable of lists of (host, metric, [timestamps_ms], [values])."""
        ingest = self.pb["ingest"]

        def messages():
            for batch in batches:
                yield ingest.SampleBatch(series=[
                    ingest.Series(host=h, metric=m, timestamps_ms=list(ts), values=list(vs)) for h, m, ts, vs in batch
                ])

        return self.ingest.PushMetrics(messages(), timeout=timeout, metadata=self.metadata)

    def push_events(self, events, timeout=10.0):
        """events: iterable of dicts with ts_ms, kind (e.g. "deploy_started"), and optional
        deployment, resource, host, details_json."""
        ingest = self.pb["ingest"]
        msgs = []
        for e in events:
            e = dict(e)
            kind = ingest.EventKind.Value("EVENT_KIND_" + e.pop("kind").upper())
            msgs.append(ingest.Event(kind=kind, **e))
        return self.ingest.PushEvents(ingest.PushEventsRequest(events=msgs), timeout=timeout, metadata=self.metadata)

    def reload_model(self, directory="", timeout=60.0):
        req = self.pb["admin"].ReloadModelRequest(dir=directory)
        return self.admin.ReloadModel(req, timeout=timeout, metadata=self.metadata)

    def get_model(self, timeout=10.0):
        return self.admin.GetModel(self.pb["admin"].GetModelRequest(), timeout=timeout, metadata=self.metadata)

    def ping(self, timeout=10.0):
        return self.admin.Ping(self.pb["admin"].PingRequest(), timeout=timeout, metadata=self.metadata)

    def simulate_change(self, template, base_dir="", fmt="", timeout=60.0):
        """What-if of a change template (YAML or JSON text): the update stack, the risk
        score and the rollback plan; nothing live moves. base_dir: the absolute directory
        the template's relative paths resolve against (on the server's machine)."""
        req = self.pb["change"].SimulateRequest(template=template, format=fmt, base_dir=str(base_dir))
        return self.change.Simulate(req, timeout=timeout, metadata=self.metadata)
