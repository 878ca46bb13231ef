"""Kubernetes API server emulator for tycho's tests (stdlib only).

The emulator is the Rust crate in ``tests/kube-emulator`` (an HTTP front for
the kube-fake-client in-memory store). This module builds it, runs it, and
drives its ``/__emulator/`` control API.

    from kube_emulator import Emulator
    with Emulator() as emu:
        emu.write_kubeconfig("/tmp/kubeconfig")
        emu.faults(method="POST", path_regex="/deployments$", action={"status": 500})
        ...

pytest: ``pytest_plugins = ["kube_emulator"]`` in a conftest.py (with
``tests/support/`` on sys.path), then use the ``kube_emulator`` fixture: one emulator
process per session, reset before each test. With ``TYCHO_TEST_KUBECONFIG``
set, the fixture points at that real cluster instead and every control
method skips the test.

Environment:
    TYCHO_KUBE_EMULATOR_BIN   use this binary, do not build
    CARGO                     cargo executable (default: cargo)
    CARGO_BUILD_JOBS          passed through to cargo
    TYCHO_TEST_KUBECONFIG     run against a real cluster (control API skips)
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

# This module lives in tests/support/; the crate is tests/kube-emulator.
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATE_DIR = os.path.join(TESTS, "kube-emulator")
TARGET_DIR = os.path.join(CRATE_DIR, "target")
BIN_NAME = "kube-emulator"

_build_lock = threading.Lock()
_built_path: str | None = None


def build_emulator() -> str:
    """Build the emulator (release) once per process; return the binary path.

    ``TYCHO_KUBE_EMULATOR_BIN`` skips the build. The crate has its own
    target directory (tests/kube-emulator/target) so it never shares a lock
    or a feature set with the root crate.
    """
    global _built_path
    env_bin = os.environ.get("TYCHO_KUBE_EMULATOR_BIN")
    if env_bin:
        if not os.access(env_bin, os.X_OK):
            raise RuntimeError(f"TYCHO_KUBE_EMULATOR_BIN={env_bin} is not an executable")
        return env_bin
    with _build_lock:
        if _built_path:
            return _built_path
        cargo = os.environ.get("CARGO", "cargo")
        env = dict(os.environ, CARGO_TARGET_DIR=TARGET_DIR)
        cmd = [cargo, "build", "--release", "--manifest-path",
               os.path.join(CRATE_DIR, "Cargo.toml"), "--bin", BIN_NAME]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building kube-emulator failed:\n{proc.stdout[-4000:]}")
        path = os.path.join(TARGET_DIR, "release", BIN_NAME)
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"kube-emulator binary not found at {path}")
        _built_path = path
        return path


class EmulatorError(RuntimeError):
    pass


def _kubeconfig_text(server: str, namespace: str, token: str) -> str:
    # JSON-compatible YAML, readable by PyYAML, serde_yaml and kubectl alike.
    q = json.dumps
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: kube-emulator\n  cluster:\n    server: {q(server)}\n"
        "contexts:\n"
        "- name: kube-emulator\n  context:\n    cluster: kube-emulator\n"
        f"    user: kube-emulator\n    namespace: {q(namespace)}\n"
        "current-context: kube-emulator\n"
        "preferences: {}\n"
        "users:\n"
        f"- name: kube-emulator\n  user:\n    token: {q(token)}\n"
    )


class Emulator:
    """One kube-emulator process on 127.0.0.1.

    Use as a context manager, or call ``start()``/``stop()``.
    """

    is_emulator = True

    def __init__(self, binary: str | None = None, port: int = 0, log_path: str | None = None):
        self.binary = binary
        self.requested_port = port
        self.log_path = log_path
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._log = None

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> "Emulator":
        if self._proc is not None:
            return self
        binary = self.binary or build_emulator()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        port_file = os.path.join(self._tmpdir.name, "port")
        log_path = self.log_path or os.path.join(self._tmpdir.name, "emulator.log")
        self._log = open(log_path, "ab")
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.requested_port), "--port-file", port_file],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(f"kube-emulator exited with {self._proc.returncode}; log: {log_path}")
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            time.sleep(0.02)
        else:
            self.stop()
            raise EmulatorError("kube-emulator did not start in time")
        # Ready when it answers.
        while time.monotonic() < deadline:
            try:
                self._call("GET", "/version", control=False)
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.02)
        self.stop()
        raise EmulatorError("kube-emulator did not answer /version")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ plumbing
    @property
    def url(self) -> str:
        if self.port is None:
            raise EmulatorError("emulator not started")
        return f"http://127.0.0.1:{self.port}"

    def _call(self, method: str, path: str, body=None, control: bool = True):
        data = None if body is None else json.dumps(body).encode()
        prefix = "/__emulator" if control else ""
        req = urllib.request.Request(self.url + prefix + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            raise EmulatorError(f"{method} {path}: HTTP {e.code}: {raw[:500]!r}") from None
        return json.loads(raw) if raw else None

    def write_kubeconfig(self, path, namespace: str = "default", token: str = "kube-emulator-token") -> str:
        """Write a kubeconfig (plain http, bearer token) for this emulator."""
        path = os.fspath(path)
        with open(path, "w") as f:
            f.write(_kubeconfig_text(self.url, namespace, token))
        return path

    # ------------------------------------------------------------ control API
    def faults(self, method: str | None = None, path_regex: str = ".*", nth: int = 1,
               every: bool = False, times: int = 1, action: dict | None = None, *,
               status: int | None = None, retry_after: int | None = None,
               drop: bool = False, delay_ms: int | None = None,
               reason: str | None = None, message: str | None = None) -> int:
        """Inject a fault; returns its id.

        Matching: ``method`` (None = any) and ``path_regex`` (searched in the
        URL path, without the query). Counting starts now: the fault fires on
        matching requests number ``nth`` .. ``nth + times - 1``, or on every
        matching request with ``every=True``.

        Action: pass ``action`` as a dict, or the keywords: ``status`` (error
        code, a Kubernetes Status body; ``retry_after`` seconds adds a
        Retry-After header), ``drop=True`` (close the connection, no
        response), ``delay_ms`` (delay, then continue or apply the others).
        """
        if action is None:
            action = {}
            if status is not None:
                action["status"] = status
            if retry_after is not None:
                action["retry_after"] = retry_after
            if drop:
                action["drop"] = True
            if delay_ms is not None:
                action["delay_ms"] = delay_ms
            if reason is not None:
                action["reason"] = reason
            if message is not None:
                action["message"] = message
            if not action:
                action = {"status": 500}
        spec = {"path_regex": path_regex, "nth": nth, "times": times, "every": every, "action": action}
        if method:
            spec["method"] = method
        return self._call("POST", "/faults", spec)["id"]

    add_fault = faults

    def list_faults(self) -> list:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def latency(self, ms: int) -> None:
        """Delay every non-control request by ``ms`` milliseconds."""
        self._call("POST", "/latency", {"latency_ms": int(ms)})

    def requests(self) -> list:
        """API requests seen since the last reset: [{method, path, query}]."""
        return self._call("GET", "/requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def reset(self, store_only: bool = False) -> None:
        """Empty the store; unless ``store_only``, also clear faults,
        latency, the request log and the load-balancer IP."""
        self._call("POST", "/reset", {"store_only": store_only})

    def objects(self, strip_volatile: bool = False) -> list:
        """Every stored object, sorted by (apiVersion, kind, namespace, name).

        ``strip_volatile`` removes server-assigned values (uid,
        resourceVersion, creationTimestamp, generation, managedFields,
        ownerReferences[].uid, clusterIP(s), nodePort) for comparisons.
        """
        items = self._call("GET", "/objects")["items"]
        if strip_volatile:
            items = [strip_volatile_fields(o) for o in items]
        return items

    def set_deployment_status(self, namespace: str, name: str, ready_replicas: int | None = None,
                              available_replicas: int | None = None, replicas: int | None = None,
                              conditions: list | None = None, pods: bool = False, **extra) -> dict:
        """Make a deployment look rolled out (defaults: all spec.replicas
        ready and available, Available/Progressing conditions, and
        observedGeneration = generation). ``pods=True`` also creates a
        ReplicaSet and Running/Ready pods owned by it (deleted with the
        deployment through ownerReferences). ``extra`` camelCase keys are
        copied into .status."""
        body = dict(extra)
        if ready_replicas is not None:
            body["readyReplicas"] = ready_replicas
        if available_replicas is not None:
            body["availableReplicas"] = available_replicas
        if replicas is not None:
            body["replicas"] = replicas
        if conditions is not None:
            body["conditions"] = conditions
        if pods:
            body["pods"] = True
        return self._call("POST", f"/deployments/{namespace}/{name}/status", body)

    def set_loadbalancer_ip(self, ip: str | None) -> int:
        """Give LoadBalancer services (existing and future) this ingress IP
        (None clears it). Returns how many existing services were updated."""
        return self._call("POST", "/loadbalancer", {"ip": ip})["updated"]

    # ------------------------------------------------------------ watches
    def watch_delay(self, ms: int) -> None:
        """Deliver each watch event ``ms`` milliseconds after its write
        (lists and gets see the write at once). ``reset()`` sets it to 0."""
        self._call("POST", "/watch-delay", {"ms": int(ms)})

    def cut_watches(self) -> int:
        """End every open watch stream; returns how many were open."""
        return int(self._call("POST", "/watch-cut")["cut"])

    def compact(self) -> None:
        """Forget the event history: a watch from any resourceVersion older
        than the current one answers 410 Gone (an ERROR event, reason
        Expired), and the client must list again."""
        self._call("POST", "/compact")

    def open_watches(self) -> int:
        """How many watch streams are open now."""
        return int(self._call("GET", "/watches")["open"])


_VOLATILE_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                  "selfLink")


def strip_volatile_fields(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    meta = obj.get("metadata", {})
    for k in _VOLATILE_META:
        meta.pop(k, None)
    for ref in meta.get("ownerReferences", []) or []:
        ref.pop("uid", None)
    spec = obj.get("spec")
    if isinstance(spec, dict) and obj.get("kind") == "Service":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
        for p in spec.get("ports", []) or []:
            p.pop("nodePort", None)
    return obj


class RealCluster:
    """Stand-in for ``Emulator`` when TYCHO_TEST_KUBECONFIG points at a real
    cluster: the kubeconfig is that file and every control method skips."""

    is_emulator = False

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig

    @property
    def url(self) -> str:
        return self._server()

    def _server(self) -> str:
        with open(self.kubeconfig) as f:
            for line in f:
                s = line.strip()
                if s.startswith("server:"):
                    return s.split(":", 1)[1].strip().strip('"')
        return ""

    def write_kubeconfig(self, path, namespace: str = "default") -> str:
        path = os.fspath(path)
        with open(self.kubeconfig) as src, open(path, "w") as dst:
            dst.write(src.read())
        return path

    def _skip(self, what: str):
        import pytest
        pytest.skip(f"{what} needs the kube emulator (TYCHO_TEST_KUBECONFIG points at a real cluster)")

    def faults(self, *a, **k):
        self._skip("fault injection")

    add_fault = faults

    def list_faults(self):
        self._skip("fault injection")

    def clear_faults(self):
        self._skip("fault injection")

    def latency(self, ms):
        self._skip("latency injection")

    def requests(self):
        self._skip("request counting")

    def clear_requests(self):
        self._skip("request counting")

    def reset(self, store_only=False):
        self._skip("store reset")

    def objects(self, strip_volatile=False):
        self._skip("object dump")

    def set_deployment_status(self, *a, **k):
        self._skip("simulated deployment status")

    def set_loadbalancer_ip(self, ip):
        self._skip("simulated load balancer")

    def watch_delay(self, ms):
        self._skip("watch event delay")

    def cut_watches(self):
        self._skip("cutting watch streams")

    def compact(self):
        self._skip("compaction of the watch history")

    def open_watches(self):
        self._skip("counting open watches")


try:
    import pytest
except ImportError:  # the module stays usable without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def kube_emulator_session():
        real = os.environ.get("TYCHO_TEST_KUBECONFIG")
        if real:
            yield RealCluster(real)
            return
        emu = Emulator()
        emu.start()
        try:
            yield emu
        finally:
            emu.stop()

    @pytest.fixture
    def kube_emulator(kube_emulator_session):
        """The session's emulator, reset (empty store, no faults, no
        latency, empty request log) before the test."""
        if isinstance(kube_emulator_session, Emulator):
            kube_emulator_session.reset()
        yield kube_emulator_session
