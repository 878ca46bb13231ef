"""`tycho api` over HTTP, as a subprocess, against the emulated Kubernetes API server.

The ``Server`` helper, ``call`` and the ``kubeconfig``/``server``/``token_server`` fixtures
live in tests/support/api_server.py."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
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

ROOT = Path(__file__).resolve().parents[2]


def deployments(emu):
    return [o for o in emu.objects() if o["kind"] == "Deployment"]


# ------------------------------------------------------------------ round trip


def test_start_status_modify_delete_round_trip(server, kube_emulator):  # noqa: F811
    code, _, r = call("POST", server.url + "/system/start", start_request())
    assert code == 200 and r["status"] == "success", r
    sid, name = r["result"]["sid"], r["result"]["name"]
    assert name == f"nginx-{sid}" and r["message"] == f"Started system {name}"
    assert set(r["result"]) >= {"name", "sid", "containers", "conn_string"}
    assert [d["metadata"]["name"] for d in deployments(kube_emulator)] == [name]
    # The principal's token: in the system's Secret only (owned by the Deployment).
    [secret] = [o for o in kube_emulator.objects() if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == f"{name}-tokens" and secret["metadata"]["labels"]["tycho-guid"] == sid
    assert secret["metadata"]["ownerReferences"][0]["uid"] == deployments(kube_emulator)[0]["metadata"]["uid"]
    assert all("tok-alice" not in json.dumps(o) for o in kube_emulator.objects() if o["kind"] != "Secret")

    code, _, r = call("POST", server.url + "/system/status", {"name": sid})
    assert code == 200 and r["status"] == "success", r
    assert r["message"] == f"Get status for system {sid}"
    [row] = r["result"]
    assert row["sid"] == sid and row["username"] == "alice" and row["is_ready"] is False

    code, _, r = call("POST", server.url + "/system/status", {})
    assert code == 200 and r["message"] == "Get status for system None" and len(r["result"]) == 1

    code, _, r = call("POST", server.url + "/system/modify",
                      {"tycho-guid": sid, "labels": {"team": "blue"}, "cpu": "250m", "memory": "300M"})
    assert code == 200 and r["status"] == "success", r
    assert r["message"] == "Modified the system" and r["result"]["patches"]
    [dep] = deployments(kube_emulator)
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "blue"
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == "250m" and limits["memory"] == "300M"

    code, _, r = call("POST", server.url + "/system/delete", {"name": sid})
    assert code == 200 and r == {"status": "success", "result": {}, "message": f"Deleted system {sid}"}
    assert deployments(kube_emulator) == []
    assert [o for o in kube_emulator.objects() if o["kind"] == "Secret"] == []
    assert "tok-alice" not in server.log()
    code, _, r = call("POST", server.url + "/system/status", {"name": sid})
    assert r["result"] == []


def test_operation_failure_is_an_error_response(server, kube_emulator):  # noqa: F811
    """As in the original: HTTP 200, status "error", result {"error": message}."""
    kube_emulator.faults(method="POST", path_regex="/deployments$", every=True, status=403,
                         reason="Forbidden", message="deployments is forbidden")
    code, _, r = call("POST", server.url + "/system/start", start_request())
    assert code == 200 and r["status"] == "error", r
    assert "forbidden" in r["message"].lower() and r["result"] == {"error": r["message"]}
    # A request the compiler refuses (schema-valid, semantically wrong).
    bad = start_request()
    bad["system"]["services"]["nginx"]["ports"] = ["eighty"]
    code, _, r = call("POST", server.url + "/system/start", bad)
    assert code == 200 and r["status"] == "error" and "eighty" in r["message"]
    # A cluster that forbids creating Secrets: the error names the RBAC rule and the setting.
    kube_emulator.clear_faults()
    kube_emulator.faults(method="POST", path_regex="/secrets$", every=True, status=403, reason="Forbidden")
    code, _, r = call("POST", server.url + "/system/start", start_request())
    assert code == 200 and r["status"] == "error", r
    assert "`create secrets`" in r["message"] and "access_token_env" in r["message"]
    kube_emulator.clear_faults()
    assert deployments(kube_emulator) == []


# ------------------------------------------------------------------ bad requests


def test_malformed_json_is_400(server):  # noqa: F811
    code, _, r = call("POST", server.url + "/system/start", raw=b'{"name": "x",')
    assert code == 400 and r["status"] == "error" and "not valid JSON" in r["message"], r
    assert r["result"]["error"] == r["message"]


def test_wrong_types_are_400_naming_the_field(server):  # noqa: F811
    req = start_request()
    req["name"] = 5
    code, _, r = call("POST", server.url + "/system/start", req)
    assert code == 400 and r["result"]["field"] == "name", r
    assert "field 'name' must be of type string, not integer" in r["message"]

    req = start_request()
    req["system"]["services"]["nginx"]["ports"] = [True]
    code, _, r = call("POST", server.url + "/system/start", req)
    assert code == 400 and r["result"]["field"] == "system.services.nginx.ports[0]", r

    code, _, r = call("POST", server.url + "/system/start", [1, 2])
    assert code == 400 and "request body must be of type object, not array" in r["message"]
    code, _, r = call("POST", server.url + "/system/delete", {})
    assert code == 400 and r["result"]["field"] == "name" and "is required" in r["message"]
    code, _, r = call("POST", server.url + "/system/status", {"username": ["a"]})
    assert code == 400 and r["result"]["field"] == "username"
    code, _, r = call("POST", server.url + "/system/modify", {"tycho-guid": "x", "cpu": {}})
    assert code == 400 and r["result"]["field"] == "cpu"


def test_not_json_content_type_is_415(server):  # noqa: F811
    code, _, r = call("POST", server.url + "/system/status", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert code == 415 and r["status"] == "error"


def _wait_in_flight(emu, timeout=30):
    """Waits until the API server has received a request (it is then held there by the
    latency), instead of sleeping a fixed time and hoping it got there."""
    deadline = time.monotonic() + timeout
    while not emu.requests():
        assert time.monotonic() < deadline, "the request never reached the API server"
        time.sleep(0.05)


def _answer_while_sending(host, port, head, chunks, timeout=60):
    """Send ``head`` then ``chunks`` on a raw socket and return the server's answer
    ``(status, body bytes)``, independent of timing: sending stops as soon as an answer
    arrives, a broken pipe or reset while sending is expected (the server may answer and
    close while the client still sends), and whatever the server wrote before closing
    is read (Linux returns queued data before reporting a reset)."""
    import select
    import socket

    sock = socket.create_connection((host, port), timeout=timeout)
    received = b""
    try:
        try:
            sock.sendall(head)
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer (or the close) is there: stop sending
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            head_end = received.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", received[:head_end])
                if m and len(received) >= head_end + 4 + int(m.group(1)):
                    break
    finally:
        sock.close()
    head_end = received.find(b"\r\n\r\n")
    assert head_end >= 0, f"no HTTP answer, got {received!r}"
    status = int(received.split(b" ", 2)[1])
    return status, received[head_end + 4 :]


def test_oversized_body_is_413(server):  # noqa: F811
    host, port = server.url.removeprefix("http://").split(":")
    # A declared Content-Length over the limit is refused before the body is read; only
    # the headers are sent, so nothing races the server closing the connection.
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/system/start")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(1024 * 1024 + 10))
    conn.endheaders()
    resp = conn.getresponse()
    r = json.loads(resp.read())
    assert resp.status == 413 and r["status"] == "error" and "larger than" in r["message"], r
    conn.close()
    # Without Content-Length (chunked), the limit holds while reading. The server may
    # answer and close while we still send: _answer_while_sending copes with that.
    head = (
        f"POST /system/status HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b" " * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    status, body = _answer_while_sending(host, int(port), head, [chunk] * 40 + [b"0\r\n\r\n"])
    assert status == 413 and json.loads(body)["status"] == "error", body


def test_unknown_path_and_method(server):  # noqa: F811
    code, _, r = call("GET", server.url + "/nothing")
    assert code == 404 and r["status"] == "error"
    code, headers, r = call("GET", server.url + "/system/start")
    assert code == 405 and r["status"] == "error" and "POST" in headers["Allow"]


# ------------------------------------------------------------------ auth


def test_token_required_when_configured(token_server):  # noqa: F811
    url = token_server.url + "/system/status"
    code, headers, r = call("POST", url, {})
    assert code == 401 and r["status"] == "error" and "missing bearer token" in r["message"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    code, _, r = call("POST", url, {}, headers={"Authorization": "Bearer wrong"})
    assert code == 401 and "invalid bearer token" in r["message"]
    code, _, r = call("POST", url, {}, headers={"Authorization": "Basic " + TOKEN})
    assert code == 401
    code, _, r = call("POST", url, {}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 200 and r["status"] == "success"
    # Probes and the description need no token; the description declares the scheme.
    assert call("GET", token_server.url + "/healthz")[0] == 200
    code, _, doc = call("GET", token_server.url + "/openapi.json")
    assert code == 200 and doc["security"] == [{"bearerAuth": []}]
    # The token never reaches the log.
    assert TOKEN not in token_server.log()


def test_non_loopback_bind_needs_token_or_insecure(tmp_path, kubeconfig):  # noqa: F811
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env.pop("TYCHO_API_TOKEN", None)
    proc = subprocess.run([sys.executable, "-m", "tycho", "api", "--host", "0.0.0.0", "-p", "0"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "TYCHO_API_TOKEN" in errors[0] and "--insecure" in errors[0], proc.stderr
    for extra, env_extra in ((["--insecure"], {}), ([], {"TYCHO_API_TOKEN": TOKEN})):
        s = Server(tmp_path, kubeconfig, args=["--host", "0.0.0.0", *extra], env=env_extra).wait_listening()
        s.stop()
        assert s.proc.returncode == 0


def test_empty_token_is_refused(tmp_path, kubeconfig):  # noqa: F811
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), TYCHO_API_TOKEN="  ")
    proc = subprocess.run([sys.executable, "-m", "tycho", "api", "-p", "0"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 1 and "TYCHO_API_TOKEN is set but empty" in proc.stderr


def test_unknown_backplane_exits_1_listing_supported(kubeconfig):  # noqa: F811
    proc = subprocess.run([sys.executable, "-m", "tycho", "api", "-b", "nomad", "-p", "0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        'tycho: error: unrecognized backplane "nomad"; supported backplanes: kubernetes, docker-compose, docker')


# ------------------------------------------------------------------ concurrency, shutdown, probes


def test_concurrent_starts(server, kube_emulator):  # noqa: F811
    def go(i):
        return call("POST", server.url + "/system/start", start_request(username=f"user{i}"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(go, range(8)))
    assert all(code == 200 and r["status"] == "success" for code, _, r in results), results
    sids = {r["result"]["sid"] for _, _, r in results}
    assert len(sids) == 8
    assert {d["metadata"]["labels"]["tycho-guid"] for d in deployments(kube_emulator)} == sids
    code, _, r = call("POST", server.url + "/system/status", {"username": "user3"})
    assert len(r["result"]) == 1 and r["result"][0]["username"] == "user3"


def test_sigterm_finishes_requests_in_flight(tmp_path, kubeconfig, kube_emulator):  # noqa: F811
    s = Server(tmp_path, kubeconfig).wait_listening()
    try:
        kube_emulator.latency(1500)
        kube_emulator.clear_requests()
        out = {}

        def in_flight():
            out["r"] = call("POST", s.url + "/system/status", {})

        t = threading.Thread(target=in_flight)
        t.start()
        _wait_in_flight(kube_emulator)
        s.proc.send_signal(signal.SIGTERM)
        t.join(20)
        assert out["r"][0] == 200 and out["r"][2]["status"] == "success"
        assert s.proc.wait(timeout=15) == 0
    finally:
        s.stop()
    assert "SIGTERM received" in s.log() and "stopped" in s.log()


def test_second_signal_exits_at_once(tmp_path, kubeconfig, kube_emulator):  # noqa: F811
    s = Server(tmp_path, kubeconfig).wait_listening()
    try:
        kube_emulator.latency(8000)
        def in_flight():
            try:
                call("POST", s.url + "/system/status", {}, timeout=30)
            except OSError:  # the connection goes away with the process
                pass

        kube_emulator.clear_requests()
        t = threading.Thread(target=in_flight, daemon=True)
        t.start()
        _wait_in_flight(kube_emulator)
        s.proc.send_signal(signal.SIGTERM)
        # Let the first signal be handled (it is logged) before the second one.
        deadline = time.monotonic() + 30
        while "SIGTERM received" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        kube_emulator.latency(0)
        s.stop()
    assert "received again: exiting without waiting" in s.log()


def test_request_timeout_is_504(tmp_path, kubeconfig, kube_emulator):  # noqa: F811
    s = Server(tmp_path, kubeconfig, args=["--request-timeout", "1"]).wait_listening()
    try:
        kube_emulator.latency(2500)
        code, _, r = call("POST", s.url + "/system/status", {})
        assert code == 504 and r["status"] == "error" and "within 1 s" in r["message"]
    finally:
        kube_emulator.latency(0)
        s.stop()


def test_health_and_readiness(server, kube_emulator):  # noqa: F811
    assert call("GET", server.url + "/healthz")[:3:2] == (200, {"status": "ok"})
    assert call("GET", server.url + "/readyz")[:3:2] == (200, {"status": "ready"})
    kube_emulator.faults(method="GET", path_regex="^/version$", every=True, status=500)
    code, _, r = call("GET", server.url + "/readyz")
    assert code == 503 and r["status"] == "unavailable" and r["message"]


def test_access_log_one_line_per_request_without_bodies(server):  # noqa: F811
    secret_value = "do-not-log-this-value"
    call("POST", server.url + "/system/status", {"username": secret_value})
    call("POST", server.url + "/system/start?token=abc", raw=b"{")
    time.sleep(0.2)
    lines = [line for line in server.log().splitlines() if "tycho.api:" in line and "ms" in line]
    assert any(re.search(r"POST /system/status 200 \d+\.\dms$", line) for line in lines), lines
    assert any(re.search(r"POST /system/start 400 \d+\.\dms$", line) for line in lines), lines
    assert secret_value not in server.log() and "token=abc" not in server.log()
    assert not any(line.startswith("FORGED") for line in server.log().splitlines())


def test_cors_off_by_default_and_configurable(server, tmp_path, kubeconfig):  # noqa: F811
    preflight = {"Origin": "https://appstore.example", "Access-Control-Request-Method": "POST"}
    code, headers, _ = call("OPTIONS", server.url + "/system/status", headers=preflight)
    assert "Access-Control-Allow-Origin" not in headers
    s = Server(tmp_path, kubeconfig, args=["--cors-origin", "https://appstore.example"]).wait_listening()
    try:
        code, headers, _ = call("OPTIONS", s.url + "/system/status", headers=preflight)
        assert code == 200 and headers["Access-Control-Allow-Origin"] == "https://appstore.example"
        other = dict(preflight, Origin="https://evil.example")
        _, headers, _ = call("OPTIONS", s.url + "/system/status", headers=other)
        assert "Access-Control-Allow-Origin" not in headers
    finally:
        s.stop()


# ------------------------------------------------------------------ OpenAPI, clients


def test_openapi_document(server):  # noqa: F811
    code, _, doc = call("GET", server.url + "/openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.0")
    assert set(doc["paths"]) == {"/system/start", "/system/status", "/system/delete", "/system/modify",
                                 "/healthz", "/readyz"}
    for path, component in (("/system/start", "System"), ("/system/status", "StatusRequest"),
                            ("/system/delete", "DeleteRequest"), ("/system/modify", "ModifyRequest")):
        op = doc["paths"][path]["post"]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{component}"
        assert component in doc["components"]["schemas"]
    assert "security" not in doc


def test_tycho_client_rest_api_unchanged(server, kube_emulator, monkeypatch):  # noqa: F811
    from tycho.client import TychoClient

    monkeypatch.setenv("REST_API", "true")
    client = TychoClient(url=server.url)
    system = client.start(start_request(username="bob"))
    assert system.name.startswith("nginx-") and system.identifier and system.services
    status = client.status({"name": system.identifier})
    assert status.status == "success" and [s.identifier for s in status.services] == [system.identifier]
    response = client.modify({"tycho-guid": system.identifier, "labels": {"x": "y"}})
    assert response["status"] == "success"
    assert client.delete({"name": system.identifier})["status"] == "success"
    assert client.status({}).services == []


# ------------------------------------------------------------------ deploy/


@pytest.mark.parametrize("version", ["1.30.0", "1.33.0"])
def test_deploy_manifests_validate(version):
    import kubernetes_validate

    kinds = []
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, version, strict=True)
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"]
    role = yaml.safe_load((ROOT / "deploy" / "role.yaml").read_text())
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    # access_token_env: secret creates the token Secret; the cache watches "<app>-env" by
    # name as a streaming list (watch only). Never list or update (list would read, in one
    # request, and update change, every Secret of the namespace).
    assert rules[("", "secrets")] == {"get", "watch", "create", "delete", "deletecollection"}
    assert rules[("", "persistentvolumeclaims")] >= {"get", "deletecollection"}
    assert all("*" not in verbs for verbs in rules.values()) and ("", "*") not in rules
    deployment = yaml.safe_load((ROOT / "deploy" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--insecure" not in container["args"]
    assert any(e["name"] == "TYCHO_API_TOKEN" for e in container["env"])


# ------------------------------------------------------------------ schemathesis


def test_schemathesis_finds_nothing(server, tmp_path):  # noqa: F811
    exe = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not os.path.exists(exe):
        pytest.skip("schemathesis is not installed (pip install '.[test]')")
    proc = subprocess.run(
        [exe, "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", "60",
         "--seed", "1", "--workers", "2", "--no-shrink",
         "--report", "junit", "--report-dir", str(tmp_path / "st")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # No 5xx in the access log either.
    assert not re.search(r"POST /system/\w+ 5\d\d ", server.log())
