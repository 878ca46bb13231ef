"""`tycho api` as a subprocess, for the REST server tests.

* ``Server``: a ``tycho api -p 0`` process against a kubeconfig; ``url`` once it listens;
* fixtures ``kubeconfig`` (the session's kube emulator), ``server`` and ``token_server``
  (``TYCHO_API_TOKEN`` set to ``TOKEN``): import them into the test module, with the
  ``kube_emulator`` fixtures they need;
* ``call``: one HTTP request, answered as (status, headers, JSON or text);
* ``start_request``: a start request for examples/nginx/docker-compose.yaml.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]  # <repo>/tests/support/api_server.py
NGINX = ROOT / "examples" / "nginx" / "docker-compose.yaml"
TOKEN = "s3cret-token-for-tests"


class Server:
    """A `tycho api` process; `url` once it listens."""

    def __init__(self, tmp_path, kubeconfig, args=(), env=None):
        self.log_path = tmp_path / f"api-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ, KUBECONFIG=str(kubeconfig))
        full_env.pop("TYCHO_API_TOKEN", None)
        full_env.pop("NAMESPACE", None)
        full_env.pop("REST_API", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tycho", "api", "-p", "0", *args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env,
        )
        self.url = None

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://\S+)", self.log())
            if m:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"tycho api exited with {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"tycho api did not listen in time: {self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self._log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def kubeconfig(kube_emulator, tmp_path):
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def server(tmp_path, kubeconfig):
    s = Server(tmp_path, kubeconfig).wait_listening()
    yield s
    s.stop()


@pytest.fixture
def token_server(tmp_path, kubeconfig):
    s = Server(tmp_path, kubeconfig, env={"TYCHO_API_TOKEN": TOKEN}).wait_listening()
    yield s
    s.stop()


def call(method, url, body=None, raw=None, headers=None, timeout=30):
    """(status, headers, parsed JSON or text) of one request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            code, rh, text = resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        code, rh, text = e.code, e.headers, e.read().decode()
    try:
        return code, rh, json.loads(text)
    except ValueError:
        return code, rh, text


def start_request(name="nginx", username="alice"):
    system = yaml.safe_load(NGINX.read_text())
    services = {}
    for svc_name, svc in system["services"].items():
        for port in svc.get("ports", []):
            services[svc_name] = {"port": int(str(port).split(":")[-1])}
    return {
        "name": name,
        "principal": json.dumps({"username": username, "access_token": "tok-" + username}),
        "serviceaccount": "default",
        "env": {},
        "system": system,
        "services": services,
    }
