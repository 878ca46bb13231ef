"""Readiness with reasons, progress events and waiting (src/exec/kube/wait.rs), against the kube
emulator over real HTTP: ``TychoContext.readiness`` / ``status({"reasons": True})`` /
``aprogress`` / ``wait``, two ``cli_main`` runs of ``up --wait`` in one process, and a
refused connection that fails at once naming the API server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from cluster import cluster_fixture, start  # noqa: F401 - the cluster fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from pods import UNSCHEDULABLE, make_pod, waiting
from tycho import _native
from tycho.config import Config
from tycho.context import TychoContext
from tycho.exceptions import DeleteException, TychoException
from tycho.kube import KubernetesCompute

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "examples" / "nginx" / "docker-compose.yaml"


def context():
    return TychoContext(product="common", stub=False)


@pytest.mark.parametrize("status, reason, failed", [
    (waiting("ImagePullBackOff", 'Back-off pulling image "x"'), 'ImagePullBackOff: Back-off pulling image "x"', True),
    (waiting("CrashLoopBackOff"), "CrashLoopBackOff", True),
    (UNSCHEDULABLE, "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.", False),
])
def test_readiness_names_the_reason(cluster, status, reason, failed):
    system, _ = start(cluster)
    sid = system.identifier
    first = context().readiness(sid)
    assert first["sid"] == sid and first["ready"] is False and first["failed"] is False
    assert first["progress"] == 10, first  # the Deployment exists, no pod yet
    make_pod(cluster, sid, status)
    event = context().readiness(sid)
    assert event["reason"] == reason and event["failed"] is failed and event["ready"] is False, event
    assert reason in event["message"] and system.name in event["message"]
    assert 10 <= event["progress"] < 100


def test_status_rows_keep_the_original_keys_and_reasons_are_opt_in(cluster):
    system, _ = start(cluster)
    make_pod(cluster, system.identifier, UNSCHEDULABLE)
    ctx = context()
    (plain,) = ctx.status({"name": system.identifier}).services
    assert plain.reason is None and plain.is_ready is False
    (service,) = ctx.status({"name": system.identifier, "reasons": True}).services
    assert service.reason == "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    # The rows (what TychoService(**row) of the original receives) carry no new key.
    rows = _native.kube_status(system.identifier)
    assert set(rows[0]) == {"name", "app_id", "sid", "ip_address", "port", "creation_time", "username",
                            "utilization", "workspace_name", "is_ready"}
    cluster.control.set_deployment_status(cluster.namespace, system.name, pods=True)
    (ready,) = ctx.status({"name": system.identifier, "reasons": True}).services
    assert ready.is_ready is True and ready.reason is None


def test_progress_stream_ends_ready(cluster):
    system, _ = start(cluster)
    sid = system.identifier
    events = []

    async def follow():
        async for event in context().aprogress(sid, interval=0.05, timeout=120):
            events.append(event)
            if len(events) == 1:
                make_pod(cluster, sid, UNSCHEDULABLE)
            elif (event["reason"] or "").startswith("Unschedulable"):
                cluster.control.set_deployment_status(cluster.namespace, system.name, pods=True)

    asyncio.run(follow())
    assert events[0]["progress"] == 10 and not events[0]["ready"]
    assert any((e["reason"] or "").startswith("Unschedulable") for e in events), events
    assert events[-1]["ready"] is True and events[-1]["progress"] == 100 and events[-1]["reason"] is None
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    assert all(a != b for a, b in zip(events, events[1:]))


def test_blocking_wait_returns_the_failure(cluster):
    system, _ = start(cluster)
    make_pod(cluster, system.identifier, waiting("ErrImagePull", "no such image"))
    event = context().wait(system.identifier, timeout=120)
    assert event["failed"] is True and event["reason"] == "ErrImagePull: no such image"


def test_wait_of_an_unknown_system_fails_at_once(cluster):
    event = context().wait("0123456789abcdef0123456789abcdef", timeout=120)
    assert event["failed"] is True and event["reason"] == "NotFound"


def _deployments(cluster):
    return [o for o in cluster.control.objects() if o["kind"] == "Deployment"]


def test_two_cli_main_runs_in_one_process(cluster):
    """`up --wait` twice in one process: the second run uses the executor's live client
    (once, a client bound to the first run's dropped runtime made it fail)."""
    for run in range(2):
        before = {d["metadata"]["name"] for d in _deployments(cluster)}
        result: dict = {}

        def up(result=result):
            result["code"] = _native.cli_main(["tycho", "up", "-f", str(NGINX), "--wait", "--timeout", "120"])

        thread = threading.Thread(target=up)
        thread.start()
        deadline = time.monotonic() + 60
        new = []
        while not new and time.monotonic() < deadline and thread.is_alive():
            new = [d for d in _deployments(cluster) if d["metadata"]["name"] not in before]
            time.sleep(0.05)
        assert new, f"run {run}: no deployment appeared"
        cluster.guids.append(new[0]["metadata"]["labels"]["tycho-guid"])
        cluster.control.set_deployment_status(cluster.namespace, new[0]["metadata"]["name"], pods=True)
        thread.join(120)
        assert result.get("code") == 0, f"run {run}: {result}"


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_fails_at_once_naming_the_server(monkeypatch, tmp_path):
    port = _closed_port()
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
        "current-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("NAMESPACE", "default")
    with pytest.raises(DeleteException) as info:
        KubernetesCompute(Config()).delete("0123456789abcdef0123456789abcdef")
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message, message
    # One attempt, and the seven collections that failed for the same reason are named once.
    assert message.count("connection to the Kubernetes API") == 1, message
    assert "attempts)" not in message, message
    with pytest.raises(TychoException, match=f"127.0.0.1:{port}"):
        context().readiness("0123456789abcdef0123456789abcdef")


def test_rest_server_gives_reasons_on_request_only(cluster, tmp_path, monkeypatch):
    """``tycho api``: ``"reasons": true`` in a status request adds ``reason`` to each row;
    without it the rows keep the original's keys (its client builds TychoService(**row));
    our TychoContext over REST (REST_API=true) puts the reason on the TychoService."""
    from api_server import Server

    system, _ = start(cluster)
    make_pod(cluster, system.identifier, UNSCHEDULABLE)
    server = Server(tmp_path, cluster.kubeconfig).wait_listening()
    try:
        def status(body):
            req = urllib.request.Request(server.url + "/system/status", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                answer = json.loads(resp.read())
            assert answer["status"] == "success", answer
            return answer["result"]

        (plain,) = status({"name": system.identifier})
        assert "reason" not in plain
        (row,) = status({"name": system.identifier, "reasons": True})
        assert row["reason"] == "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
        assert {k: v for k, v in row.items() if k != "reason"} == plain
        monkeypatch.setenv("REST_API", "true")
        monkeypatch.setenv("TYCHO_URL", server.url)
        ctx = context()
        (service,) = ctx.status({"name": system.identifier, "reasons": True}).services
        assert service.reason == row["reason"] and service.identifier == system.identifier
        (no_reason,) = ctx.status({"name": system.identifier}).services
        assert no_reason.reason is None
        cluster.control.set_deployment_status(cluster.namespace, system.name, pods=True)
        (ready,) = status({"name": system.identifier, "reasons": True})
        assert ready["is_ready"] is True and ready["reason"] is None
    finally:
        server.stop()


def test_a_cli_run_leaves_the_library_its_own_settings(cluster, tmp_path):
    """``cli_main`` hands its --kubeconfig (and "no cache") to the executor for its own run
    only: the library in the same process reads its KUBECONFIG again afterwards."""
    port = _closed_port()
    other = tmp_path / "other-kubeconfig"
    other.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
        "current-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
    )
    assert _native.cli_main(["tycho", "status", "--kubeconfig", str(other)]) == 1
    system, _ = start(cluster)
    rows = KubernetesCompute(Config()).status(system.identifier)
    assert [r["sid"] for r in rows] == [system.identifier]
    assert _native.cli_main(["tycho", "status", "--kubeconfig", cluster.kubeconfig]) == 0
