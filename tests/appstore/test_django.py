"""Appstore-like Django smoke test.

tests/appstore/django_app is a minimal Django project whose views module builds its tycho
context at import time exactly as HeLx appstore does
(``ContextFactory().get(context_type=settings.TYCHO_MODE, product=settings.APPLICATION_BRAND[,
tycho_config_url=...])``). Driven with Django's test client, it lists apps (``tycho.apps``,
``get_definition``), starts an app, lists instances (``status({"username": ...})`` and
the TychoService fields appstore reads), modifies (``update``) and deletes one:

* "null" mode (appstore's DEV_PHASE=stub): NullContext over the packaged registry;
* "live" mode: a registry and app specs served by http.server on 127.0.0.1
  (``tycho_config_url``), apps run by the native executor on the emulated Kubernetes
  API server (tests/kube-emulator);
* both again in a forked worker (``os.fork``; gunicorn's model): the child lists and
  starts through the module-level context it inherited and exits 0.

The LOGGING setting routes tycho.client / tycho.kube / tycho.context records into
memory; no token may appear in them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from forking import run_in_child

django = pytest.importorskip("django", reason="Django is needed for the appstore smoke test (pip install '.[test]')")

from tycho.context import ContextFactory, NullContext, TychoContext  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")
django.setup()

from cluster import cluster_fixture  # noqa: E402,F401 - the `cluster` fixture
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import clear_url_caches  # noqa: E402
from django_app import logs  # noqa: E402
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: E402,F401 - pytest fixtures

ACCESS_TOKEN = "secret-access-token-0123456789"
REFRESH_TOKEN = "secret-refresh-token-9876543210"
USER = {"HTTP_X_REMOTE_USER": "jdoe", "HTTP_AUTHORIZATION": f"Bearer {ACCESS_TOKEN}",
        "HTTP_X_REFRESH_TOKEN": REFRESH_TOKEN}
OTHER_USER = {"HTTP_X_REMOTE_USER": "mallory"}

DEFINITION = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "jupyter/datascience-notebook:2024-01-01",
            "ports": ["8888"],
            "deploy": {"resources": {"limits": {"cpus": "4", "memory": "8G", "ephemeralStorage": "2G"},
                                     "reservations": {"cpus": "1", "memory": "1G"}}},
        }
    },
}


@contextlib.contextmanager
def smoke_app(mode, brand, config_url=""):
    """The smoke project in ``mode`` for ``brand``: a fresh import of its URL conf and
    views (as a new Django process would do), with ContextFactory's shared state reset."""
    ContextFactory._state.clear()
    logs.RECORDS.clear()
    with override_settings(TYCHO_MODE=mode, APPLICATION_BRAND=brand, TYCHO_CONFIG_URL=config_url):
        for name in ("django_app.urls", "django_app.views"):
            sys.modules.pop(name, None)
        clear_url_caches()
        views = importlib.import_module("django_app.views")
        try:
            yield Client(), views
        finally:
            for name in ("django_app.urls", "django_app.views"):
                sys.modules.pop(name, None)
            clear_url_caches()
            ContextFactory._state.clear()


def assert_no_tokens_logged(*loggers):
    """The LOGGING setting caught records of ``loggers``, and no token is in any record."""
    names = {record.split(" ", 2)[1] for record in logs.RECORDS}
    for name in loggers:
        assert name in names, f"no {name} records reached the handler configured in LOGGING ({sorted(names)})"
    text = "\n".join(logs.RECORDS)
    assert ACCESS_TOKEN not in text and REFRESH_TOKEN not in text


def post_json(client, path, body, **headers):
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


def patch_json(client, path, body, **headers):
    return client.patch(path, data=json.dumps(body), content_type="application/json", **headers)


# ---------------------------------------------------------------- null mode


@pytest.fixture
def offline_definitions():
    """The packaged registry's specs live on GitHub; the null-mode tests never reach out."""

    def definition(self, app_id):
        spec = json.loads(json.dumps(DEFINITION))
        spec["services"] = {app_id: spec["services"]["jupyter-ds"]}
        return spec

    with mock.patch.object(TychoContext, "get_definition", definition):
        yield


def test_null_mode(offline_definitions):
    with smoke_app("null", "braini") as (client, views):
        assert isinstance(views.tycho, NullContext)
        apps = client.get("/apps/").json()
        assert {"jupyter-ds", "imagej", "filebrowser"} <= set(apps)
        jupyter = apps["jupyter-ds"]
        assert jupyter["name"] and jupyter["spec"].endswith("/jupyter-ds/docker-compose.yaml")
        assert jupyter["maximum_resources"] == {"cpus": 4.0, "memory": "8G", "gpus": 0, "ephemeralStorage": "2G"}
        assert jupyter["minimum_resources"]["memory"] == "1G"
        assert client.get("/apps/imagej/").json()["name"] == "ImageJ Viewer"
        assert client.get("/apps/nope/").status_code == 404

        created = post_json(client, "/instances/", {"app_id": "imagej", "cpus": 1, "memory": "2G"}, **USER)
        assert created.status_code == 201, created.content
        body = created.json()
        assert len(body["sid"]) == 32 and body["port"] == 8080 and body["ip_address"] == "x.y.z"
        assert post_json(client, "/instances/", {"app_id": "nope"}, **USER).status_code == 404

        rows = client.get("/instances/", **USER).json()
        assert len(rows) == 5
        assert rows[0]["app_id"] == "jupyter-ds" and rows[0]["creation_time"] == "time"
        assert rows[0]["cpus"] == 0 and rows[0]["memory"] == "0.0" and rows[0]["is_ready"] is False

        sid = rows[0]["sid"]
        updated = patch_json(client, f"/instances/{sid}/", {"labels": {"tier": "gold"}, "cpu": "2"}, **USER)
        assert updated.status_code == 200 and updated.json()["status"] == "success"
        # The null context's made-up rows belong to no user (as in tycho-api 1.17.3), so
        # appstore's owner check refuses the delete.
        refused = client.delete(f"/instances/{sid}/", **USER)
        assert refused.status_code == 403
    assert_no_tokens_logged("tycho.context")


def test_null_mode_in_forked_worker(offline_definitions):
    with smoke_app("null", "braini") as (client, views):
        assert client.get("/instances/", **USER).status_code == 200

        def worker():
            worker_client = Client()
            listed = worker_client.get("/instances/", **USER)
            started = post_json(worker_client, "/instances/", {"app_id": "jupyter-ds"}, **USER)
            return {"list": listed.status_code, "rows": len(listed.json()), "start": started.status_code,
                    "sid": started.json().get("sid"), "pid": os.getpid()}

        answer = run_in_child(worker)
        assert answer["list"] == 200 and answer["rows"] == 5 and answer["start"] == 201 and answer["sid"]
        assert answer["pid"] != os.getpid()
        assert client.get("/instances/", **USER).status_code == 200  # the parent still serves


# ---------------------------------------------------------------- live mode

REGISTRY = """
api: Tycho
version: 1.0.0
repositories:
  smoke_apps:
    url: apps
settings:
  hub: docker.io
contexts:
  common:
    apps:
      jupyter-ds:
        name: Jupyter Data Science
        description: Notebooks
        details: Python, R and Julia notebooks
        docs: $smoke_apps/jupyter-ds/README.html
        services:
          jupyter-ds: 8888
        count: 1
  tweaks:
    apps:
      jupyter-ds:
        ext:
          kube:
            livenessProbe:
              cmd: ["pgrep", "-f", "jupyter"]
  smoke:
    name: Smoke
    extends: [common]
    mixin: [tweaks]
    apps:
      nginx:
        name: Nginx
        services:
          nginx: 80
        proxy-rewrite:
          enabled: true
          target: /
"""

DEFAULTS = """
ext:
  kube:
    readinessProbe:
      httpGet:
        path: "/private/{{ system_name }}/{{ username }}/{{ identifier }}"
        port: "{{ system_port }}"
"""

JUPYTER_SPEC = """
version: "3.0"
services:
  jupyter-ds:
    image: "{{ hub }}/jupyter/datascience-notebook:2024-01-01"
    entrypoint: start.sh jupyter lab --LabApp.token=
    ports:
      - "8888"
    deploy:
      resources:
        limits: {cpus: "4", memory: 8G, ephemeralStorage: 2G}
        reservations: {cpus: "1", memory: 1G}
"""

NGINX_SPEC = """
version: "3.0"
services:
  nginx:
    image: "{{ hub }}/library/nginx:1.25"
    ports: ["80"]
    deploy:
      resources:
        limits: {cpus: "1", memory: 512M}
        reservations: {cpus: "0.5", memory: 256M}
"""


@pytest.fixture
def registry_url(tmp_path):
    """The registry and app specs, served by http.server from a directory on 127.0.0.1."""
    root = tmp_path / "served"
    (root / "registry" / "apps" / "jupyter-ds").mkdir(parents=True)
    (root / "registry" / "apps" / "nginx").mkdir(parents=True)
    (root / "registry" / "app-registry.yaml").write_text(REGISTRY)
    (root / "registry" / "app-defaults.yaml").write_text(DEFAULTS)
    (root / "registry" / "apps" / "jupyter-ds" / "docker-compose.yaml").write_text(JUPYTER_SPEC)
    (root / "registry" / "apps" / "jupyter-ds" / ".env").write_text("NB_UMASK=002\n")
    (root / "registry" / "apps" / "nginx" / "docker-compose.yaml").write_text(NGINX_SPEC)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/registry"
    finally:
        server.shutdown()
        server.server_close()


def test_live_mode(cluster, registry_url):
    with smoke_app("live", "smoke", registry_url) as (client, views):
        assert type(views.tycho) is TychoContext
        assert views.tycho.tycho_config_url == registry_url + "/"
        apps = client.get("/apps/").json()
        assert set(apps) == {"jupyter-ds", "nginx"}
        assert apps["jupyter-ds"]["docs"] == registry_url + "/apps/jupyter-ds/README.html"
        assert apps["jupyter-ds"]["maximum_resources"] == {"cpus": 4.0, "memory": "8G", "gpus": 0,
                                                           "ephemeralStorage": "2G"}
        assert apps["nginx"]["minimum_resources"]["memory"] == "256M"

        created = post_json(client, "/instances/", {"app_id": "jupyter-ds", "cpus": 1, "memory": "2G"}, **USER)
        assert created.status_code == 201, created.content
        sid = created.json()["sid"]
        cluster.guids.append(sid)
        assert created.json()["name"] == f"jupyter-ds-{sid}" and created.json()["port"]

        rows = client.get("/instances/", **USER).json()
        assert [r["sid"] for r in rows] == [sid]
        (row,) = rows
        assert row["app_id"] == "jupyter-ds" and row["username"] == "jdoe"  # original-app-name, as 1.17.3
        assert row["workspace_name"] and row["creation_time"]
        assert row["cpus"] == 1000 and row["memory"] == "2.0"
        assert isinstance(row["is_ready"], bool)
        assert client.get("/instances/", **OTHER_USER).json() == []
        assert client.get(f"/instances/{sid}/", **USER).json()["sid"] == sid

        updated = patch_json(client, f"/instances/{sid}/", {"labels": {"tier": "gold"}, "cpu": "2", "memory": "3G"},
                             **USER)
        assert updated.status_code == 200 and updated.json()["status"] == "success", updated.content
        assert updated.json()["result"]["patches"]
        assert client.get("/instances/", **USER).json()[0]["cpus"] == 2000

        assert client.delete(f"/instances/{sid}/", **OTHER_USER).status_code == 403
        deleted = client.delete(f"/instances/{sid}/", **USER)
        assert deleted.status_code == 200 and deleted.json()["status"] == "success"
        assert client.get("/instances/", **USER).json() == []
        assert client.get(f"/instances/{sid}/", **USER).status_code == 404
    assert_no_tokens_logged("tycho.context", "tycho.client", "tycho.kube")


def test_live_mode_in_forked_worker(cluster, registry_url):
    with smoke_app("live", "smoke", registry_url) as (client, views):
        created = post_json(client, "/instances/", {"app_id": "nginx"}, **USER)
        assert created.status_code == 201, created.content
        parent_sid = created.json()["sid"]
        cluster.guids.append(parent_sid)

        def worker():
            worker_client = Client()
            listed = worker_client.get("/instances/", **USER)
            started = post_json(worker_client, "/instances/", {"app_id": "jupyter-ds"}, **USER)
            return {"list": listed.status_code, "rows": [r["sid"] for r in listed.json()],
                    "start": started.status_code, "sid": started.json().get("sid"), "error": started.json().get("error")}

        answer = run_in_child(worker)
        assert answer["list"] == 200 and answer["rows"] == [parent_sid]
        assert answer["start"] == 201, answer["error"]
        cluster.guids.append(answer["sid"])
        # the parent still works, and sees the system its worker started
        rows = client.get("/instances/", **USER).json()
        assert sorted(r["sid"] for r in rows) == sorted([parent_sid, answer["sid"]])
    assert_no_tokens_logged("tycho.context", "tycho.client", "tycho.kube")
