"""Culling (issue 22, part 2) on the kube emulator over HTTP, with an injected clock
(``--now`` / ``TYCHO_NOW`` / ``now=``): ``tycho cull``, ``tycho touch``, the Python call
(``KubernetesCompute.cull``), ``POST /system/touch`` and the loop of ``tycho api
--cull-every``. The activity probe is a real HTTP server in the test, reached through
``activity_host`` (``TYCHO_ACTIVITY_HOST``) instead of the system's Service.

Done when: a system idle past ``--idle`` is stopped by ``tycho cull``, a ``touch`` keeps
another alive, and ``resume`` brings the first back ready.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from api_server import NGINX, Server, call
from cluster import COMPOSE, cluster_fixture, compute, start  # noqa: F401 - the `cluster` fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho import _native
from tycho.exceptions import TychoException

ACTIVITY = "tycho.renci.org/activity"
LAST_ACTIVITY = "tycho.renci.org/last-activity"


def iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
ROOT = Path(__file__).resolve().parents[2]


def env_for(kubeconfig):
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    for var in ("NAMESPACE", "TYCHO_API_TOKEN", "REST_API", "TYCHO_NOW", "TYCHO_ACTIVITY_HOST"):
        env.pop(var, None)
    return env


def _tycho(kubeconfig, *args, env=None):
    full = env_for(kubeconfig)
    full.update(env or {})
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60, env=full)


def deployment_of(emu, guid):
    (d,) = [o for o in emu.objects() if o["kind"] == "Deployment" and o["metadata"]["labels"]["tycho-guid"] == guid]
    return d


@pytest.fixture
def kubeconfig(kube_emulator, tmp_path):  # noqa: F811
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


def test_done_when_idle_is_stopped_touch_keeps_alive_resume_brings_back(kubeconfig, kube_emulator):  # noqa: F811
    guids = []
    try:
        for _ in range(2):
            proc = _tycho(kubeconfig, "up", "-f", str(NGINX), "-o", "json")
            assert proc.returncode == 0, proc.stderr
            guids.append(json.loads(proc.stdout)["sid"])
        idle, touched = guids
        later = iso(utcnow() + datetime.timedelta(hours=2))
        proc = _tycho(kubeconfig, "touch", touched, env={"TYCHO_NOW": later})
        assert proc.returncode == 0 and proc.stdout == f"{touched}\n", proc.stderr
        assert deployment_of(kube_emulator, touched)["metadata"]["annotations"][LAST_ACTIVITY] == later

        # A dry run lists what would go and why, and changes nothing.
        proc = _tycho(kubeconfig, "cull", "--idle", "1h", "--dry-run", "--now", later, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["dry_run"] is True and report["now"] == later
        assert [r["sid"] for r in report["culled"]] == [idle]
        (row,) = report["culled"]
        assert row["reason"] == "idle" and row["activity_source"] == "start" and row["done"] is False
        assert row["idle_seconds"] >= 7200 - 120
        assert deployment_of(kube_emulator, idle)["spec"]["replicas"] == 1
        assert "dry run: would stop system " + idle in proc.stderr

        proc = _tycho(kubeconfig, "cull", "--idle", "1h", "--max-age", "7d", "--now", later)
        assert proc.returncode == 0, proc.stderr
        assert idle in proc.stdout and touched not in proc.stdout and "stopped" in proc.stdout
        culled_lines = [line for line in proc.stderr.splitlines() if "tycho.cull: culled system" in line]
        assert len(culled_lines) == 1 and idle in culled_lines[0] and "because idle" in culled_lines[0]
        assert deployment_of(kube_emulator, idle)["spec"]["replicas"] == 0
        assert deployment_of(kube_emulator, touched)["spec"]["replicas"] == 1
        # Already stopped: the next pass leaves it.
        proc = _tycho(kubeconfig, "cull", "--idle", "1h", "--now", later, "-o", "name")
        assert proc.returncode == 0 and proc.stdout == "", (proc.stdout, proc.stderr)

        proc = _tycho(kubeconfig, "resume", idle, env={"TYCHO_NOW": later})
        assert proc.returncode == 0, proc.stderr
        d = deployment_of(kube_emulator, idle)
        assert d["spec"]["replicas"] == 1 and d["metadata"]["annotations"][LAST_ACTIVITY] == later
        kube_emulator.set_deployment_status("default", d["metadata"]["name"])
        (row,) = json.loads(_tycho(kubeconfig, "status", idle, "-o", "json").stdout)
        assert row["is_ready"] is True
        # Resumed counts as active: not culled again at once.
        proc = _tycho(kubeconfig, "cull", "--idle", "1h", "--now", later, "-o", "name")
        assert proc.stdout == ""
    finally:
        for guid in guids:
            _tycho(kubeconfig, "down", guid)


def test_cli_usage_errors(kubeconfig):
    proc = _tycho(kubeconfig, "cull")
    assert proc.returncode == 2 and "--max-age or --idle" in proc.stderr
    for args in (["--idle", "soon"], ["--idle", "1h", "--action", "nuke"], ["--idle", "1h", "--now", "yesterday"]):
        proc = _tycho(kubeconfig, "cull", *args)
        assert proc.returncode == 1, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tycho: error: "), proc.stderr


# ------------------------------------------------------------------ the activity probe


class Activity:
    """A real HTTP server answering GET /api/status like Jupyter (``last_activity``)."""

    def __init__(self):
        self.answer: object = {"last_activity": None}
        self.raw: bytes | None = None
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                time.sleep(outer.delay)
                body = outer.raw if outer.raw is not None else json.dumps(outer.answer).encode()
                if self.path != "/api/status":
                    self.send_response(404)
                    body = b"{}"
                else:
                    self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def activity():
    a = Activity()
    yield a
    a.close()


def with_probe(port):
    compose = copy.deepcopy(COMPOSE)
    compose["services"]["jupyter-ds"]["activity"] = {"port": port, "path": "/api/status", "field": "last_activity"}
    return compose


def test_probe_newest_wins_bounded_and_filters(cluster, kube_emulator, activity, monkeypatch):  # noqa: F811
    probed, _ = start(cluster, compose=with_probe(activity.port), username="alice")
    plain, _ = start(cluster, username="bob")
    (d,) = cluster.of_kind(probed.identifier, "Deployment")
    assert json.loads(d["metadata"]["annotations"][ACTIVITY]) == {
        "port": activity.port, "path": "/api/status", "field": "last_activity"}
    c = compute()
    now = utcnow() + datetime.timedelta(hours=2)
    options = {"idle": "1h", "now": iso(now), "activity_host": "127.0.0.1", "dry_run": True}

    def culled(**extra):
        report = c.cull(**{**options, **extra})
        return {r["sid"]: r for r in report["culled"]}

    # The probe says active 10 minutes ago: kept; the other goes by its start time.
    activity.answer = {"last_activity": iso(now - datetime.timedelta(minutes=10)), "kernels": 1}
    rows = culled()
    assert set(rows) == {plain.identifier} and rows[plain.identifier]["activity_source"] == "start"
    assert activity.hits == 1
    # Seconds since the epoch are read too.
    activity.answer = {"last_activity": (now - datetime.timedelta(minutes=5)).timestamp()}
    assert set(culled()) == {plain.identifier}
    # A probe older than the start: the start time is the newest activity.
    activity.answer = {"last_activity": iso(now - datetime.timedelta(days=3))}
    rows = culled()
    assert rows[probed.identifier]["activity_source"] == "start" and rows[probed.identifier]["reason"] == "idle"
    # A probe that fails (an error, a body over the limit, not JSON, no field) is ignored.
    for status, raw in ((500, None), (200, b'{"last_activity": "' + b"x" * (128 * 1024) + b'"}'),
                        (200, b"<html>"), (200, b'{"other": 1}')):
        activity.status, activity.raw = status, raw
        assert probed.identifier in culled()
    activity.status, activity.raw = 200, None
    # A probe that does not answer within its 5 s is given up and ignored too.
    activity.answer = {"last_activity": iso(now)}
    activity.delay = 8.0
    assert probed.identifier in culled()
    activity.delay = 0.0
    assert probed.identifier not in culled()
    # A touch newer than everything keeps it (newest wins).
    activity.answer = {"last_activity": iso(now - datetime.timedelta(days=3))}
    monkeypatch.setenv("TYCHO_NOW", iso(now - datetime.timedelta(minutes=1)))
    c.touch(probed.identifier)
    monkeypatch.delenv("TYCHO_NOW")
    rows = culled()
    assert probed.identifier not in rows
    # Filters: by user and by app; max-age culls regardless of activity.
    assert set(culled(username="bob")) == {plain.identifier}
    assert culled(app="nothing-like-it") == {}
    rows = culled(max_age="1h", idle=None)
    assert {probed.identifier, plain.identifier} <= set(rows)
    assert {r["reason"] for r in rows.values()} == {"max-age"}
    # Nothing was changed by the dry runs.
    for system in (probed, plain):
        assert cluster.of_kind(system.identifier, "Deployment")[0]["spec"]["replicas"] == 1

    # For real: the idle one is stopped, counted and the other kept; then deleted.
    before = _metric('tycho_culled_total{reason="idle"}')
    report = c.cull(idle="1h", now=now, activity_host="127.0.0.1", username="bob")
    (row,) = report["culled"]
    assert row["sid"] == plain.identifier and row["done"] is True and row["action"] == "stop"
    assert cluster.of_kind(plain.identifier, "Deployment")[0]["spec"]["replicas"] == 0
    assert _metric('tycho_culled_total{reason="idle"}') == before + 1
    report = c.cull(idle=datetime.timedelta(hours=1), now=now, action="delete", username="bob")
    assert [r["sid"] for r in report["culled"]] == [plain.identifier]
    assert cluster.of_kind(plain.identifier, "Deployment") == []
    with pytest.raises(TychoException, match="--max-age or --idle"):
        c.cull(now=now)
    with pytest.raises(TychoException, match="action"):
        c.cull(idle="1h", action="nuke")
    with pytest.raises(TypeError):
        c.cull(idle="1h", bogus=True)


def _metric(name):
    for line in _native.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_registry_activity_reaches_the_deployment(tmp_path):
    """`activity` of a registry app travels to the Deployment's annotation (offline render)."""
    import yaml

    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "tests" / "registry-small", registry)
    doc = yaml.safe_load((registry / "app-registry.yaml").read_text())
    doc["contexts"]["base"]["apps"]["hello"]["activity"] = {"port": 8080, "path": "api/status"}
    (registry / "app-registry.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([EXE, "render", "--registry", str(registry), "--product", "base", "--app", "hello",
                           "-o", "json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (d,) = [o for o in json.loads(proc.stdout)["items"] if o["kind"] == "Deployment"]
    assert json.loads(d["metadata"]["annotations"][ACTIVITY]) == {
        "port": 8080, "path": "api/status", "field": "last_activity"}
    doc["contexts"]["base"]["apps"]["hello"]["activity"] = {"port": "eighty"}
    (registry / "app-registry.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([EXE, "render", "--registry", str(registry), "--product", "base", "--app", "hello"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "activity" in proc.stderr and "port" in proc.stderr, proc.stderr


# ------------------------------------------------------------------ REST touch and the api loop


def test_api_touch_and_cull_loop(tmp_path, kubeconfig, kube_emulator):  # noqa: F811
    later = iso(utcnow() + datetime.timedelta(hours=2))
    guids = []
    for _ in range(2):
        proc = _tycho(kubeconfig, "up", "-f", str(NGINX), "-o", "json")
        assert proc.returncode == 0, proc.stderr
        guids.append(json.loads(proc.stdout)["sid"])
    kept, idle = guids
    # Touched at `later` before the loop runs: the loop keeps it.
    assert _tycho(kubeconfig, "touch", kept, env={"TYCHO_NOW": later}).returncode == 0
    server = Server(tmp_path, kubeconfig, args=["--cull-every", "1s", "--idle", "1h", "--now", later],
                    env={"TYCHO_NOW": later}).wait_listening()
    try:
        code, _, r = call("POST", server.url + "/system/touch", {"name": kept})
        assert code == 200 and r["message"] == f"Touched system {kept}", r
        assert deployment_of(kube_emulator, kept)["metadata"]["annotations"][LAST_ACTIVITY] == later
        code, _, r = call("POST", server.url + "/system/touch", {})
        assert code == 400 and r["result"]["field"] == "name"

        # The pass logs its line after the stop: wait for both (no time bound asserted
        # but a generous deadline).
        deadline = time.monotonic() + 60
        while not re.search(rf"culled system {idle} .*because idle", server.log()):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert deployment_of(kube_emulator, idle)["spec"]["replicas"] == 0
        assert deployment_of(kube_emulator, kept)["spec"]["replicas"] == 1
        code, _, text = call("GET", server.url + "/metrics")
        assert 'tycho_culled_total{reason="idle"} 1' in text
    finally:
        server.stop()
        for guid in guids:
            _tycho(kubeconfig, "down", guid)


def test_api_cull_loop_needs_a_rule(tmp_path, kubeconfig):
    proc = subprocess.run([EXE, "api", "-p", "0", "--cull-every", "1m"], capture_output=True, text=True,
                          timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 2 and "--max-age or --idle" in proc.stderr
