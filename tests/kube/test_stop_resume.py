"""Stop and resume (issue 22, part 1) on every face: ``KubernetesCompute`` and
``TychoContext`` against the kube emulator over HTTP, ``POST /system/stop|resume`` of
``tycho api`` and ``tycho stop|resume``. ``DockerComposeCompute`` on the real Docker
Engine: tests/dockerc/test_docker_stop_resume.py.

Stop scales the Deployment to 0 (its replica count kept in an annotation) and leaves
the Services, the token Secret, claims and the NetworkPolicy as they were; resume scales
it back in one patch; both are idempotent. A stopped system's status row keeps its keys
with ``is_ready`` false; with reasons, the reason says stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from api_server import NGINX, TOKEN, Server, call
from api_server import start_request as api_start_request
from cluster import cluster_fixture, compute, start  # noqa: F401 - the `cluster` fixture
from docker_engine import wait_for
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho import _native
from tycho.context import TychoContext
from tycho.exceptions import TychoException

ROW_KEYS = {"name", "app_id", "sid", "ip_address", "port", "creation_time", "username", "utilization",
            "workspace_name", "is_ready"}
STOPPED = "tycho.renci.org/stopped-replicas"
LAST_ACTIVITY = "tycho.renci.org/last-activity"


def _patch(emu, path, body):
    req = urllib.request.Request(emu.url + path, data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def versions(cluster, guid):
    """resourceVersion of every object of the system but its Deployment."""
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for o in cluster.objects(guid) if o["kind"] != "Deployment"}


def test_stop_and_resume_keep_everything_but_the_pods(cluster, kube_emulator):  # noqa: F811
    system, result = start(cluster, clients=["10.0.0.0/8"])
    guid, name = system.identifier, result["name"]
    kinds = {o["kind"] for o in cluster.objects(guid)}
    assert {"Deployment", "Service", "NetworkPolicy", "Secret"} <= kinds
    # Two replicas: resume must bring back the count the system had, not 1.
    _patch(kube_emulator, f"/apis/apps/v1/namespaces/{cluster.namespace}/deployments/{name}",
           {"spec": {"replicas": 2}})
    kube_emulator.set_deployment_status(cluster.namespace, name)
    c = compute()
    (row,) = c.status(guid)
    assert row["is_ready"] is True
    before = versions(cluster, guid)

    stopped = c.stop(guid)
    assert stopped == {"name": guid, "deployments": {name: 0}}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"][STOPPED] == "2"
    assert versions(cluster, guid) == before  # Services, Secret, NetworkPolicy untouched
    (stopped_row,) = c.status(guid)
    assert set(stopped_row) == ROW_KEYS == set(row)
    assert stopped_row["is_ready"] is False
    assert {k: v for k, v in stopped_row.items() if k != "is_ready"} == {k: v for k, v in row.items() if k != "is_ready"}
    reason = _native.kube_readiness(guid)["reason"]
    assert reason.startswith("Stopped"), reason

    # Idempotent: a second stop changes nothing.
    version = deployment["metadata"]["resourceVersion"]
    assert c.stop(guid)["deployments"] == {name: 0}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["metadata"]["resourceVersion"] == version

    resumed = c.resume(guid)
    assert resumed == {"name": guid, "deployments": {name: 2}}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    annotations = deployment["metadata"].get("annotations") or {}
    assert STOPPED not in annotations and LAST_ACTIVITY in annotations
    version = deployment["metadata"]["resourceVersion"]
    assert c.resume(guid)["deployments"] == {name: 2}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["metadata"]["resourceVersion"] == version
    assert versions(cluster, guid) == before
    kube_emulator.set_deployment_status(cluster.namespace, name)
    assert c.status(guid)[0]["is_ready"] is True


def test_unknown_or_invalid_guid_is_an_error(cluster):
    c = compute()
    with pytest.raises(TychoException, match="no system with GUID 0123"):
        c.stop("0123456789abcdef0123456789abcdef")
    with pytest.raises(TychoException, match="not a valid Kubernetes label value"):
        c.resume("bad guid/with slash")


def test_context_stop_resume_and_async(cluster, kube_emulator):  # noqa: F811
    import asyncio

    system, result = start(cluster)
    guid = system.identifier
    context = TychoContext(product="common")
    assert context.stop(guid)["deployments"] == {result["name"]: 0}
    assert cluster.of_kind(guid, "Deployment")[0]["spec"]["replicas"] == 0
    assert asyncio.run(context.aresume(guid))["deployments"] == {result["name"]: 1}
    assert asyncio.run(context.astop(guid))["deployments"] == {result["name"]: 0}
    with pytest.raises(TychoException, match="no system"):
        context.resume("0123456789abcdef0123456789abcdef")


# ------------------------------------------------------------------ REST


@pytest.fixture
def api_kubeconfig(kube_emulator, tmp_path):  # noqa: F811
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


def test_rest_stop_resume_and_reasons(tmp_path, api_kubeconfig, kube_emulator, monkeypatch):  # noqa: F811
    server = Server(tmp_path, api_kubeconfig).wait_listening()
    try:
        code, _, r = call("POST", server.url + "/system/start", api_start_request())
        assert code == 200 and r["status"] == "success", r
        sid, name = r["result"]["sid"], r["result"]["name"]
        code, _, r = call("POST", server.url + "/system/stop", {"name": sid})
        assert code == 200 and r["status"] == "success", r
        assert r["message"] == f"Stopped system {sid}" and r["result"]["deployments"] == {name: 0}
        code, _, r = call("POST", server.url + "/system/status", {"name": sid, "reasons": True})
        (row,) = r["result"]
        assert set(row) == ROW_KEYS | {"reason"} and row["is_ready"] is False
        assert row["reason"].startswith("Stopped"), row
        code, _, r = call("POST", server.url + "/system/stop", {"name": sid})
        assert r["status"] == "success"  # idempotent
        code, _, r = call("POST", server.url + "/system/resume", {"name": sid})
        assert code == 200 and r["message"] == f"Resumed system {sid}" and r["result"]["deployments"] == {name: 1}
        kube_emulator.set_deployment_status("default", name)

        # The server reads its watch cache: the status change arrives with the watch.
        def ready_row():
            code, _, r = call("POST", server.url + "/system/status", {"name": sid, "reasons": True})
            return r["result"][0] if r["result"] and r["result"][0]["is_ready"] else None

        row = wait_for(ready_row, what=f"system {sid} ready")
        assert row["reason"] is None

        # Bad bodies are 400 naming the field; an unknown system is an error response.
        code, _, r = call("POST", server.url + "/system/stop", {})
        assert code == 400 and r["result"]["field"] == "name", r
        code, _, r = call("POST", server.url + "/system/resume", {"name": 5})
        assert code == 400 and r["result"]["field"] == "name", r
        code, _, r = call("POST", server.url + "/system/stop", {"name": "0123456789abcdef0123456789abcdef"})
        assert code == 200 and r["status"] == "error" and "no system" in r["message"]

        # The in-process client's REST mode.
        from tycho.client import TychoClient

        monkeypatch.setenv("REST_API", "true")
        client = TychoClient(url=server.url)
        assert client.stop({"name": sid})["status"] == "success"
        assert client.resume({"name": sid})["result"]["deployments"] == {name: 1}

        code, _, doc = call("GET", server.url + "/openapi.json")
        for path, component in (("/system/stop", "StopRequest"), ("/system/resume", "ResumeRequest"),
                                ("/system/touch", "TouchRequest")):
            ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{component}" and component in doc["components"]["schemas"]
        call("POST", server.url + "/system/delete", {"name": sid})
    finally:
        server.stop()


def test_rest_stop_needs_the_token(tmp_path, api_kubeconfig):
    server = Server(tmp_path, api_kubeconfig, env={"TYCHO_API_TOKEN": TOKEN}).wait_listening()
    try:
        for path in ("/system/stop", "/system/resume", "/system/touch"):
            code, _, r = call("POST", server.url + path, {"name": "0123456789abcdef0123456789abcdef"})
            assert code == 401, (path, r)
        code, _, r = call("POST", server.url + "/system/stop", {"name": "0123456789abcdef0123456789abcdef"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert code == 200 and r["status"] == "error"
    finally:
        server.stop()


# ------------------------------------------------------------------ CLI


EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")


def _tycho(kubeconfig, *args):
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    for var in ("NAMESPACE", "TYCHO_API_TOKEN", "REST_API", "TYCHO_NOW"):
        env.pop(var, None)
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_cli_stop_resume(api_kubeconfig, kube_emulator):  # noqa: F811
    proc = _tycho(api_kubeconfig, "up", "-f", str(NGINX), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    guid = json.loads(proc.stdout)["sid"]
    try:
        proc = _tycho(api_kubeconfig, "stop", guid)
        assert proc.returncode == 0 and proc.stdout == f"{guid}\n", proc.stderr
        (row,) = json.loads(_tycho(api_kubeconfig, "status", guid, "-o", "json").stdout)
        assert row["is_ready"] is False
        deployment = [o for o in kube_emulator.objects() if o["kind"] == "Deployment"
                      and o["metadata"]["labels"]["tycho-guid"] == guid][0]
        assert deployment["spec"]["replicas"] == 0
        assert _tycho(api_kubeconfig, "stop", guid).returncode == 0  # idempotent
        proc = _tycho(api_kubeconfig, "resume", guid)
        assert proc.returncode == 0 and proc.stdout == f"{guid}\n", proc.stderr
        deployment = [o for o in kube_emulator.objects() if o["kind"] == "Deployment"
                      and o["metadata"]["labels"]["tycho-guid"] == guid][0]
        assert deployment["spec"]["replicas"] == 1
        proc = _tycho(api_kubeconfig, "stop", "0123456789abcdef0123456789abcdef")
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tycho: error: cannot stop 0123"), proc.stderr
        assert _tycho(api_kubeconfig, "resume").returncode == 2  # usage: a GUID is required
    finally:
        _tycho(api_kubeconfig, "down", guid)
