"""`tycho render/up --registry DIR|URL --product P --app A`: the request appstore would send
(`TychoContext.start`), built by the command line from a registry directory or URL.

Runs on tests/registry-small (always) and on every app of HeLx's catalogue when
the catalogue is found (TYCHO_HELX_CORPUS, else ../shared/corpus/helx-apps beside the clone)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from corpus import helx_corpus
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "registry-small"
EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
CORPUS = str(helx_corpus()) if (helx_corpus() / "app-registry.yaml").is_file() else None
GUID = "0123456789abcdef0123456789abcdef"


def tycho(*args, env=None, timeout=60):
    full = dict(os.environ, **(env or {}))
    full.pop("TYCHO_ACCESS_TOKEN", None)
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=full)


def render(registry, product, app, *extra):
    proc = tycho("render", "--registry", str(registry), "--product", product, "--app", app,
                 "--guid", GUID, "-o", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["items"]


def check_objects(items):
    for obj in items:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    containers = items[0]["spec"]["template"]["spec"]["containers"]
    for c in containers + items[0]["spec"]["template"]["spec"].get("initContainers", []):
        assert not c["image"].startswith("/"), c["image"]
    return containers


def by_name(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# ------------------------------------------------------------------ the small registry


def test_registry_settings_env_and_app_entries():
    items = render(SMALL, "shop", "hello", "--username", "alice")
    [c] = check_objects(items)
    dep = items[0]
    assert dep["metadata"]["name"] == f"hello-{GUID}"
    assert dep["metadata"]["labels"]["username"] == "alice"
    # {{ app_registry }} from the registry's settings
    assert c["image"] == "registry.example.org/tests/hello:1.0"
    env = by_name(c)
    assert env["FROM_REGISTRY"] == "yes"  # the app's registry env
    assert env["GREETING"] == "hi"  # the .env beside the spec
    # app-defaults' readiness probe and the mixin's liveness probe
    assert c["readinessProbe"]["httpGet"]["path"] == f"/private/hello/alice/{GUID}"
    assert c["livenessProbe"]["exec"]["command"] == ["pgrep", "httpd"]
    # the spec's own resources, as appstore sends them by default
    assert c["resources"]["limits"]["cpu"] == "1"
    [svc] = [o for o in items if o["kind"] == "Service"]
    assert svc["spec"]["ports"][0]["port"] == 8080


def test_registry_security_context_and_inherited_app():
    items = render(SMALL, "shop", "board")
    check_objects(items)
    pod = items[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["containers"][0]["image"] == "docker.io/library/nginx:1.27"
    # base does not offer board
    proc = tycho("render", "--registry", str(SMALL), "--product", "base", "--app", "board")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("tycho: error: ") and "board" in line and "hello" in line


def test_registry_namespace_and_name_output():
    items = render(SMALL, "shop", "hello", "--namespace", "team-a")
    assert {o["metadata"]["namespace"] for o in items} == {"team-a"}
    proc = tycho("render", "--registry", str(SMALL), "--product", "shop", "--app", "hello",
                 "--guid", GUID, "-o", "name")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"deployment.apps/hello-{GUID}", f"service/hello-{GUID}"]


def test_registry_usage_errors():
    # --registry needs --product and --app; it excludes -f
    assert tycho("render", "--registry", str(SMALL)).returncode == 2
    assert tycho("render", "--registry", str(SMALL), "--product", "shop", "--app", "hello",
                 "-f", "x.yaml").returncode == 2
    proc = tycho("render", "--registry", "/no/such/dir", "--product", "shop", "--app", "hello")
    assert proc.returncode == 1 and "/no/such/dir" in proc.stderr


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served_registry(tmp_path):
    """tests/registry-small served over HTTP (what appstore's tycho_config_url points at)."""
    shutil.copytree(SMALL, tmp_path / "reg")
    handler = functools.partial(_Quiet, directory=str(tmp_path / "reg"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_registry_over_http_matches_the_directory(served_registry):
    local = render(SMALL, "shop", "hello")
    remote = render(served_registry, "shop", "hello")
    assert remote == local


def test_registry_over_http_cannot_name_local_files(tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(SMALL, reg)
    text = (reg / "app-registry.yaml").read_text()
    (reg / "app-registry.yaml").write_text(text.replace(
        "        name: Hello\n", f"        name: Hello\n        spec: file://{reg}/app-specs/hello/docker-compose.yaml\n"))
    # read from the directory: a file URL is fine
    assert render(reg, "shop", "hello")
    handler = functools.partial(_Quiet, directory=str(reg))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = tycho("render", "--registry", f"http://127.0.0.1:{server.server_address[1]}/",
                     "--product", "shop", "--app", "hello")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 1 and "local files" in proc.stderr, proc.stderr


def test_up_from_registry(kube_emulator, tmp_path):  # noqa: F811
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    proc = tycho("up", "--registry", str(SMALL), "--product", "shop", "--app", "hello", "-o", "json",
                 env={"KUBECONFIG": str(kubeconfig)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    [dep] = [o for o in kube_emulator.objects() if o["kind"] == "Deployment"]
    assert dep["metadata"]["name"] == result["name"] == f"hello-{result['sid']}"
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.org/tests/hello:1.0"


# ------------------------------------------------------------------ HeLx's catalogue


def _corpus_apps():
    if not CORPUS:
        return []
    registry = yaml.safe_load((Path(CORPUS) / "app-registry.yaml").read_text())
    seen = {}
    for product, context in (registry.get("contexts") or {}).items():
        for app in (context or {}).get("apps") or {}:
            seen.setdefault(app, product)
    return sorted((product, app) for app, product in seen.items())


@pytest.mark.skipif(not CORPUS, reason=f"HeLx's app catalogue is not at {helx_corpus()} (set TYCHO_HELX_CORPUS)")
@pytest.mark.parametrize("product, app", _corpus_apps() or [("-", "-")],
                         ids=[a for _, a in _corpus_apps()] or ["none"])
def test_every_corpus_app_renders_and_validates(product, app):
    items = render(CORPUS, product, app)
    containers = check_objects(items)
    assert all(c["image"] and "{{" not in c["image"] for c in containers)
