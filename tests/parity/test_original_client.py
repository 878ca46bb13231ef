"""The original tycho-api 1.17.3 client (REST_API=true: ``tycho.client.TychoClient(url)``,
installed in its own venv, tests/support/orig_env.py) against our ``tycho api``, with the
emulated Kubernetes API server behind it: its ``TychoService(**row)`` accepts no extra
key, so our status rows must keep its shape, readiness reasons included (they are opt-in
on our side only)."""

from __future__ import annotations

import json
import subprocess

import orig_env
from api_server import Server, start_request
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures

SCRIPT = r"""
import json, sys
from tycho.client import TychoClient
client = TychoClient(url=sys.argv[1])
out = {}
for key, request in (("one", {"name": sys.argv[2]}), ("user", {"username": "alice"}), ("all", {})):
    status = client.status(request)
    out[key] = {"status": status.status, "services": [
        {"name": s.name, "app_id": s.app_id, "sid": s.identifier, "username": s.username,
         "is_ready": s.is_ready, "total_util": s.total_util} for s in status.services]}
print(json.dumps(out))
"""


def test_the_original_client_reads_our_status_rows(tmp_path, kube_emulator):  # noqa: F811
    python = orig_env.ensure_original_venv()
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    server = Server(tmp_path, kubeconfig).wait_listening()
    try:
        # A system started through our server, not ready: our rows are what the
        # original's client builds TychoService from.
        import urllib.request

        body = start_request(name="nginx", username="alice")
        req = urllib.request.Request(server.url + "/system/start", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            started = json.loads(resp.read())
        assert started["status"] == "success", started
        guid = started["result"]["sid"]
        out = subprocess.run([python, "-c", SCRIPT, server.url, guid], capture_output=True, text=True, timeout=120,
                             env=orig_env.isolated_env(str(tmp_path), {"REST_API": "true"}))
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
        (one,) = seen["one"]["services"]
        assert seen["one"]["status"] == "success"
        assert one["sid"] == guid and one["username"] == "alice" and one["is_ready"] is False
        assert one["app_id"] == "nginx" and one["name"].startswith("nginx-")
        assert [s["sid"] for s in seen["user"]["services"]] == [guid]
        assert guid in [s["sid"] for s in seen["all"]["services"]]
    finally:
        server.stop()
