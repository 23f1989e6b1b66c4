"""The Python client (stubs generated from proto/ with grpcio-tools) against a running
`harbinger serve` with the default model and the sample fleet ingested.

Run by crates/cli/tests/python_client.rs, which starts the server and passes its
addresses: python3 tests/python/test_grpc_client.py --grpc HOST:PORT --token TOKEN
"""

import argparse
import json
import math
import pathlib
import sys
import tempfile
import unittest

import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "python"))
from harbinger_client import Client  # noqa: E402

ARGS = None


class GrpcClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Client(ARGS.grpc, token=ARGS.token)
        cls.anon = Client(ARGS.grpc)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        cls.anon.close()

    def code(self, fn):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        return cm.exception.code(), cm.exception.details()

    def test_score_hosts_returns_every_field_in_order(self):
        r = self.anon.score_hosts(["h002", "h001"])
        self.assertEqual([x.host for x in r.risks], ["h002", "h001"])
        self.assertTrue(r.model_version)
        for x in r.risks:
            for v in (x.risk, x.failure_probability, x.anomaly, x.confidence):
                self.assertGreaterEqual(v, 0.0)
                self.assertLessEqual(v, 1.0)
            self.assertGreater(x.horizon_ms, 0)
            self.assertEqual(x.model_version, r.model_version)
            # Top factors name what drives the score with the value seen. The sample fleet
            # is older than the store's retention: a host without recent data has none.
            if x.confidence == 0.0:
                self.assertEqual(list(x.factors), [], "no recent data, no factors")
            else:
                self.assertTrue(x.factors, "top factors are named")
                self.assertTrue(all(math.isfinite(f.value) for f in x.factors))

    def test_explain_host_has_every_factor(self):
        e = self.anon.explain_host("h003")
        self.assertEqual(e.risk.host, "h003")
        self.assertGreaterEqual(len(e.all_factors), len(e.risk.factors))
        names = [f.name for f in e.all_factors]
        self.assertEqual(len(names), len(set(names)))

    def test_bad_requests_get_fitting_codes(self):
        code, details = self.code(lambda: self.anon.score_hosts(["h001", "no-such-host"]))
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-host", details)
        code, _ = self.code(lambda: self.anon.score_hosts([]))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
        code, _ = self.code(lambda: self.anon.score_hosts(["h001"] * 1001))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED)
        code, _ = self.code(lambda: self.anon.explain_host(""))
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_mutating_calls_need_the_token(self):
        # Samples just after the sample fleet's end, so retention keeps them.
        end = json.loads((REPO / "datasets" / "fleet-sample" / "dataset.json").read_text())["end_ms"]
        batch = [[("h001", "py_test_metric", [end + 1_000], [0.5])]]
        code, _ = self.code(lambda: self.anon.push_metrics(batch))
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
        code, _ = self.code(lambda: self.anon.reload_model())
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
        r = self.c.push_metrics([batch[0], [("h001", "py_test_metric", [end + 2_000, end + 3_000], [0.6, 0.7])]])
        self.assertEqual((r.batches, r.accepted), (2, 3))
        r = self.c.push_events([{"ts_ms": end + 1_000, "kind": "config_changed", "host": "h001",
                                 "details_json": '{"team": "python"}'}])
        self.assertEqual(r.accepted, 1)
        before = self.anon.get_model().version
        r = self.c.reload_model()
        self.assertEqual((r.previous.version, r.current.version), (before, before))

    def test_watch_risk_streams_the_fleet(self):
        stream = self.anon.watch_risk(threshold=0.0, interval_ms=200, timeout=30)
        first = next(stream)
        self.assertTrue(first.risk.host)
        self.assertFalse(first.cleared)
        stream.cancel()

    def test_ping_and_get_model(self):
        self.assertEqual(self.anon.ping().ByteSize(), 0)
        m = self.anon.get_model()
        self.assertTrue(m.version)
        self.assertGreater(m.horizon_ms, 0)
        self.assertIn(m.learner, ("logistic", "random_forest"))

    def test_change_simulate_previews_a_file_change(self):
        with tempfile.TemporaryDirectory() as work:
            app = pathlib.Path(work) / "app.json"
            app.write_text('{"server": {"port": 8080, "workers": 4}}\n')
            template = ("stack: shop\nresources:\n  - id: web-config\n    kind: file\n    path: app.json\n"
                        "    desired:\n      content: {server: {port: 8080, workers: 8}}\n")
            code, _ = self.code(lambda: self.anon.simulate_change(template, base_dir=work))
            self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, "a what-if runs the template's commands")
            r = self.c.simulate_change(template, base_dir=work)
            ops = [(o.resource, o.path, o.op, o.from_json, o.to_json) for o in r.analysis.update_stack]
            self.assertEqual(ops, [("web-config", "/content/server/workers", "replace", "4", "8")])
            self.assertEqual([list(s.resources) for s in r.analysis.rollback.order], [["web-config"]])
            self.assertIn(r.analysis.risk_level, ("low", "medium", "high"))
            self.assertEqual(json.loads(r.json)["update_stack"][0]["to"], 8)
            self.assertEqual(json.loads(app.read_text())["server"]["workers"], 4, "nothing moved")
            code, details = self.code(lambda: self.c.simulate_change("stack: shop\nresources: [\n", base_dir=work))
            self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("template.yaml:", details)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--grpc", required=True)
    p.add_argument("--token", required=True)
    ARGS, rest = p.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])
