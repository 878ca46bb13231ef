"""The result types of ``tycho.client`` (native: src/bindings/results.rs) against the
original tycho-api 1.17.3's Python classes, on the same inputs: attributes, ``repr`` and
``total_util`` of ``TychoService``, ``TychoStatus(**response)`` and
``TychoSystem(**response)``, and the exception of an error start response. The original
runs in its own virtualenv (tests/support/orig_env.py)."""

from __future__ import annotations

import json
import subprocess

import orig_env
import pytest
from tycho import _native
from tycho.client import TychoClient, TychoService, TychoStatus, TychoSystem
from tycho.exceptions import StartException, TychoException

# Limits the original accepts: whole or milli cpus as strings, memory as a whole number
# with an M/G/T/P/E suffix ("i" dropped), GPUs by an *nvidia* key. (It raised on
# fractional cpus, plain-byte memory and containers without cpu or memory; ours counts
# those: COMPATIBILITY.md, "utilization totals".)
UTILIZATIONS = [
    {},
    {"web": {"cpu": "250m", "memory": "512Mi"}},
    {"web": {"cpu": "1", "memory": "1Gi"}, "side": {"cpu": "2", "memory": "15G"}},
    {"web": {"cpu": "1", "memory": "100M", "nvidia.com/gpu": "2"}},
    {"web": {"cpu": "3", "memory": "3Mi"}},
    {"a": {"cpu": "1500m", "memory": "7T"}, "b": {"cpu": "100m", "memory": "1E"}},
]

ROW = {"name": "jupyter-ds-1", "app_id": "jupyter-ds", "ip_address": "10.0.0.1", "port": "8888", "sid": "abc",
       "creation_time": "2024-01-01", "username": "ann", "workspace_name": "ws", "is_ready": True,
       "utilization": {"c": {"cpu": "1", "memory": "1G"}}}
STARTED = {"name": "web-abc", "sid": "abc", "conn_string": "x",
           "containers": {"web": {"ip_address": "10.0.0.2", "port-1": 30080},
                          "side": {"ip_address": "10.0.0.3", "http": 8080}}}

SCRIPT = r"""
import json, sys
from tycho.client import TychoService, TychoStatus, TychoSystem
case = json.loads(sys.stdin.read())
out = {"utils": [], "errors": []}
for u in case["utilizations"]:
    s = TychoService(name="n", app_id="a", ip_address="i", port=1, utilization=u)
    out["utils"].append([s.total_util, repr(s)])
status = TychoStatus(**case["status"])
out["status"] = [repr(status), status.status, status.message,
                 [[s.name, s.app_id, s.identifier, s.username, s.workspace_name, s.is_ready, s.total_util]
                  for s in status.services]]
system = TychoSystem(**case["system"])
out["system"] = [repr(system), system.name, system.identifier, system.conn_string, system.message,
                 [[s.name, s.app_id, s.ip_address, s.port] for s in system.services]]
try:
    TychoSystem(status="error", result={"error": "no"}, message="failed")
except Exception as e:
    out["errors"].append([type(e).__name__, e.args[0]])
print(json.dumps(out))
"""

CASE = {"utilizations": UTILIZATIONS, "status": {"status": "success", "result": [ROW, ROW], "message": "m"},
        "system": {"status": "success", "message": "started",
                   "result": {**STARTED, "containers": {"web": {"ip_address": "10.0.0.2", "port-1": 30080},
                                                        "side": {"ip_address": "10.0.0.3", "port-1": 8080}}}}}


def ours() -> dict:
    out: dict = {"utils": [], "errors": []}
    for u in UTILIZATIONS:
        s = TychoService(name="n", app_id="a", ip_address="i", port=1, utilization=u)
        out["utils"].append([s.total_util, repr(s)])
    status = TychoStatus(**CASE["status"])
    out["status"] = [repr(status), status.status, status.message,
                     [[s.name, s.app_id, s.identifier, s.username, s.workspace_name, s.is_ready, s.total_util]
                      for s in status.services]]
    system = TychoSystem(**CASE["system"])
    out["system"] = [repr(system), system.name, system.identifier, system.conn_string, system.message,
                     [[s.name, s.app_id, s.ip_address, s.port] for s in system.services]]
    with pytest.raises(StartException) as raised:
        TychoSystem(status="error", result={"error": "no"}, message="failed")
    # A StartException, which is a TychoException (COMPATIBILITY.md, "start error class").
    out["errors"].append(["TychoException", raised.value.args[0]])
    return json.loads(json.dumps(out))


def test_the_result_types_match_the_original(tmp_path):
    python = orig_env.ensure_original_venv()
    done = subprocess.run([python, "-c", SCRIPT], input=json.dumps(CASE), capture_output=True, text=True,
                          timeout=120, env=orig_env.isolated_env(str(tmp_path)))
    assert done.returncode == 0, done.stderr
    original = json.loads(done.stdout)
    mine = ours()
    assert mine["utils"] == original["utils"]
    assert mine["status"] == original["status"]
    # The original's TychoSystem has no __repr__ (the default <object at 0x...>); ours says
    # name, sid and services (COMPATIBILITY.md, "native client classes").
    assert original["system"][0].startswith("<tycho.client.TychoSystem object at")
    assert mine["system"][0].startswith("name: web-abc sid: abc services: [name: web ip: 10.0.0.2 port: 30080")
    assert mine["system"][1:] == original["system"][1:]
    assert mine["errors"] == original["errors"]


def test_the_classes_are_native_and_subclassable():
    assert TychoService is _native.TychoService and TychoStatus is _native.TychoStatus
    assert TychoSystem is _native.TychoSystem
    assert issubclass(TychoClient, _native.TychoClient) and TychoClient.__module__ == "tycho.client"
    assert TychoService.__module__ == "tycho.client"

    class Mine(TychoService):
        def label(self):
            return f"{self.name}@{self.ip_address}"

    service = Mine("n", "a", "10.0.0.9", 80, username=None)
    assert service.label() == "n@10.0.0.9" and service.username is None and service.reason is None
    service.extra = 1  # instances carry a __dict__, as Python objects did
    assert service.extra == 1 and service.try_minikube is True
    assert TychoService("n", "a", "i", 1).username == ""


def test_odd_rows_fail_as_the_original_did():
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        TychoStatus(status="success", result=[{"name": "n", "app_id": "a", "ip_address": "i", "port": 1,
                                                "bogus": 1}], message="")
    with pytest.raises(ValueError):
        TychoService("n", "a", "i", 1, utilization={"c": {"cpu": "lots"}})
    with pytest.raises(KeyError):
        TychoSystem(status="success", result={"sid": "x"}, message="")
    # A result that is not a list gives no services (an error response's result).
    assert TychoStatus(status="error", result={"error": "x"}, message="m").services == []
    assert issubclass(StartException, TychoException)


def test_a_patched_request_feeds_start_and_status(monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    answers = {"start": {"status": "success", "result": STARTED, "message": "ok"},
               "status": {"status": "success", "result": [ROW], "message": "m"}}
    monkeypatch.setattr(TychoClient, "request", lambda self, service, request: answers[service])
    client = TychoClient(url="http://nowhere:1")
    assert client.url == "http://nowhere:1/system"
    assert [s.port for s in client.start({}).services] == [30080, 8080]
    assert [s.identifier for s in client.status({}).services] == ["abc"]


def test_an_unknown_service_is_refused(monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    with pytest.raises(TychoException, match="unknown Tycho service 'nope'"):
        TychoClient().request("nope", {})
