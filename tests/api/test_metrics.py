"""Metrics (issue 12): `GET /metrics` of `tycho api` and `tycho.metrics()` of the library,
against the emulated Kubernetes API server. The text is read with the Prometheus
project's own OpenMetrics parser (prometheus-client, a test dependency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from api_server import (  # noqa: F401 - fixtures and helpers
    TOKEN,
    Server,
    call,
    kubeconfig,
    server,
    start_request,
    token_server,
)
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401

parser = pytest.importorskip(
    "prometheus_client.openmetrics.parser", reason="prometheus-client (the test extra) is not installed"
)


def parse(text: str) -> dict:
    """{(sample name, sorted labels): value} of an OpenMetrics text (the parser is strict:
    a malformed line, a missing `# EOF` or a bad type raises)."""
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(server, headers=None) -> dict:  # noqa: F811
    code, h, text = call("GET", server.url + "/metrics", headers=headers)
    assert code == 200, text
    assert h["Content-Type"].startswith("application/openmetrics-text; version=1.0.0"), h["Content-Type"]
    assert isinstance(text, str) and text.endswith("# EOF\n")
    return parse(text)


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_counters_move_with_requests(server, kube_emulator):  # noqa: F811
    before = scrape(server)
    kube_emulator.clear_requests()

    code, _, r = call("POST", server.url + "/system/start", start_request())
    assert code == 200 and r["status"] == "success", r
    sid = r["result"]["sid"]
    code, _, r = call("POST", server.url + "/system/status", {})
    assert code == 200 and len(r["result"]) == 1, r
    [row] = r["result"]
    code, _, r = call("POST", server.url + "/system/modify", {"tycho-guid": sid, "labels": {"team": "blue"}})
    assert code == 200 and r["status"] == "success", r
    code, _, r = call("POST", server.url + "/system/delete", {"name": sid})
    assert code == 200 and r["status"] == "success", r
    # A body the schema refuses and two unknown paths.
    assert call("POST", server.url + "/system/status", raw=b"{nope")[0] == 400
    assert call("GET", server.url + "/nope/123")[0] == 404
    assert call("GET", server.url + "/nope/456?x=1")[0] == 404
    kube_requests = kube_emulator.requests()
    after = scrape(server)

    http = "tycho_http_requests_total"
    for route in ["/system/start", "/system/status", "/system/modify", "/system/delete"]:
        assert delta(before, after, http, route=route, method="POST", code="200") == 1, route
    assert delta(before, after, http, route="/system/status", method="POST", code="400") == 1
    # Unknown paths share one label value: the raw path never becomes a label.
    assert delta(before, after, http, route="unmatched", method="GET", code="404") == 2
    assert not any("nope" in v for (_, labels) in after for _, v in labels)
    # The latency histogram counted the same answers.
    start_count = "tycho_http_request_duration_seconds_count"
    assert delta(before, after, start_count, route="/system/start", method="POST", code="200") == 1
    assert value(after, "tycho_http_request_duration_seconds_bucket",
                 route="/system/start", method="POST", code="200", le="+Inf") >= 1
    # The scrape before this one is counted too.
    assert value(after, http, route="/metrics", method="GET", code="200") >= 1

    ops = "tycho_operations_total"
    for op, n in [("start", 1), ("status", 1), ("modify", 1), ("delete", 1)]:
        assert delta(before, after, ops, operation=op, outcome="success") == n, op
        assert delta(before, after, ops, operation=op, outcome="error") == 0, op

    # Every request the emulator saw was counted by verb and code.
    kube = "tycho_kube_requests_total"
    assert total(after, kube) - total(before, kube) == len(kube_requests) > 0
    assert total(after, kube, verb="create") - total(before, kube, verb="create") == sum(
        1 for r in kube_requests if r["method"] == "POST")
    assert total(after, kube, verb="list") > total(before, kube, verb="list")
    assert total(after, kube, verb="patch") > total(before, kube, verb="patch")
    assert {dict(ls)["code"] for (n, ls) in after if n == kube} <= {str(c) for c in range(100, 600)}

    # Systems by app: set by the status of all systems (one running then).
    app = row["app_id"] or "unknown"
    assert value(after, "tycho_systems", app=app) == 1
    code, _, r = call("POST", server.url + "/system/status", {})
    assert r["result"] == []
    assert total(scrape(server), "tycho_systems") == 0


def test_failed_operations_are_counted_as_errors(server, kube_emulator):  # noqa: F811
    before = scrape(server)
    kube_emulator.faults(method="POST", path_regex="/deployments$", every=True, status=403,
                         reason="Forbidden", message="deployments is forbidden")
    code, _, r = call("POST", server.url + "/system/start", start_request())
    assert code == 200 and r["status"] == "error", r
    kube_emulator.clear_faults()
    after = scrape(server)
    assert delta(before, after, "tycho_operations_total", operation="start", outcome="error") == 1
    assert delta(before, after, "tycho_operations_total", operation="start", outcome="success") == 0
    assert delta(before, after, "tycho_kube_requests_total", verb="create", code="403") == 1


def test_metrics_are_open_by_default_even_with_a_token(token_server):  # noqa: F811
    # Prometheus scrapes without credentials by default; the other routes still need the token.
    scrape(token_server)
    assert call("POST", token_server.url + "/system/status", {})[0] == 401


@pytest.mark.parametrize("how", ["flag", "env"])
def test_metrics_behind_the_token(tmp_path, kubeconfig, how):  # noqa: F811
    args, env = (["--metrics", "token"], {}) if how == "flag" else ([], {"TYCHO_API_METRICS": "token"})
    s = Server(tmp_path, kubeconfig, args=args, env={"TYCHO_API_TOKEN": TOKEN, **env}).wait_listening()
    try:
        code, h, r = call("GET", s.url + "/metrics")
        assert code == 401 and r["status"] == "error", r
        scrape(s, headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        s.stop()


def test_metrics_off(tmp_path, kubeconfig):  # noqa: F811
    s = Server(tmp_path, kubeconfig, args=["--metrics", "off"]).wait_listening()
    try:
        assert call("GET", s.url + "/metrics")[0] == 404
        assert call("GET", s.url + "/healthz")[0] == 200
    finally:
        s.stop()


def test_bad_metrics_setting_is_one_line_and_exit_1(kubeconfig):  # noqa: F811
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), TYCHO_API_METRICS="sometimes")
    env.pop("TYCHO_API_TOKEN", None)
    p = subprocess.run([sys.executable, "-m", "tycho", "api", "-p", "0"], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode != 0
    assert "TYCHO_API_METRICS" in p.stderr and "sometimes" in p.stderr, p.stderr


def test_library_exposes_the_same_counters(kube_emulator, kubeconfig):  # noqa: F811
    """A Python process using the executor (as appstore does) reads its counters with
    tycho.metrics(): the operations it ran, the systems it saw and its API requests."""
    code = r"""
import json, sys
import tycho
from tycho.kube import KubernetesCompute
from tycho.config import Config
compute = KubernetesCompute(Config())
rows = compute.status()
try:
    compute.delete("not-a-running-system")
except Exception:
    pass
print(json.dumps({"rows": len(rows), "text": tycho.metrics()}))
"""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env.pop("NAMESPACE", None)
    kube_emulator.clear_requests()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    samples = parse(out["text"])
    assert value(samples, "tycho_operations_total", operation="status", outcome="success") == 1
    assert total(samples, "tycho_operations_total", operation="delete") == 1
    assert total(samples, "tycho_kube_requests_total") == len(kube_emulator.requests()) > 0
    assert total(samples, "tycho_systems") == out["rows"] == 0
    # No server in this process: no HTTP families' samples.
    assert total(samples, "tycho_http_requests_total") == 0
