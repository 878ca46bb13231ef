"""Native crossings per public operation: every callable of ``tycho._native`` wrapped
with a counter (restored after each test), then each public operation run against real
parts (a registry served over HTTP, the kube emulator) and its calls into ``_native``
counted, so the count stays where issue 23 put it.

``TychoContext.status`` / ``TychoClient.status`` read the rows into native
``TychoService`` objects in one call (``kube_status_object``), with no dict between.

``TychoContext.start`` makes two: the native method itself builds the request (the
core's builder, called in Rust: no ``registry_start_request`` from Python), then, after
the named mock.patch point ``TychoContext._start`` / ``TychoClient.start`` /
``TychoClient.request`` of the original's suites, its check, compile and start
(``kube_start_request``). Every other operation makes one call of a ``_native``
function. (The counter wraps ``_native``'s functions; the methods of the native classes
``TychoContext`` and ``TychoClient`` cannot be wrapped without replacing them, which
would switch off their own-method checks.)
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import types
from pathlib import Path

import pytest
from cluster import cluster_fixture  # noqa: F401 - the `cluster` fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from static_site import serve
from tycho import _native
from tycho.actions import DeleteSystemResource, StartSystemResource, StatusSystemResource, tycho
from tycho.client import TychoClient, TychoSystem
from tycho.context import Principal, TychoContext

REGISTRY = Path(__file__).resolve().parents[1] / "registry-small"


@pytest.fixture
def crossings(monkeypatch):
    """A Counter of calls into ``tycho._native`` by function name (while the test runs)."""
    counts: collections.Counter[str] = collections.Counter()

    def counted(name, function):
        def call(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return call

    for name in dir(_native):
        function = getattr(_native, name)
        if isinstance(function, types.BuiltinFunctionType):
            monkeypatch.setattr(_native, name, counted(name, function))
    return counts


@pytest.fixture
def registry_url(tmp_path):
    """The small test registry served over HTTP."""
    root = tmp_path / "registry"
    shutil.copytree(REGISTRY, root)
    with serve(root) as url:
        yield url


def start_request(username: str) -> dict:
    compose = {"services": {"web": {"image": "nginx:1.25", "ports": ["8080"]}}}
    return {
        "name": "web",
        "principal": json.dumps({"username": username}),
        "serviceaccount": "default",
        "env": {},
        "system": compose,
        "services": {"web": {"port": "8080", "clients": []}},
    }


def test_the_counter_sees_every_native_function(crossings):
    assert _native.parse_env("A=1") == {"A": "1"}
    assert crossings == {"parse_env": 1}


def test_context_start_crosses_twice(cluster, registry_url, crossings):  # noqa: F811
    context = TychoContext(product="shop", tycho_config_url=registry_url)
    first = context.start(Principal("ann"), "hello", None, "h.example.org")  # cold: fills the caches
    cluster.guids.append(first.identifier)
    crossings.clear()
    system = context.start(Principal("ann"), "hello", None, "h.example.org", {"COURSE": "bio101"})
    cluster.guids.append(system.identifier)
    assert isinstance(system, TychoSystem) and [s.name for s in system.services] == ["hello"]
    # TychoContext.start is native (the first crossing): it builds the request with the
    # core's builder without returning to Python, then, behind TychoContext._start (the
    # mock.patch point), the request is checked, compiled and started (the second).
    assert crossings == {"kube_start_request": 1}
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FROM_REGISTRY"] == "yes" and env["COURSE"] == "bio101"
    # The awaitable variant adds the hand-over to a worker thread.
    crossings.clear()
    awaited = asyncio.run(context.astart(Principal("ann"), "hello", None, "h.example.org"))
    cluster.guids.append(awaited.identifier)
    assert crossings == {"aio_call": 1, "kube_start_request": 1}


def test_context_status_update_and_delete_cross_once(cluster, registry_url, crossings):  # noqa: F811
    context = TychoContext(product="shop", tycho_config_url=registry_url)
    system = context.start(Principal("bob"), "hello", None, "h")
    cluster.guids.append(system.identifier)
    crossings.clear()
    status = context.status({"username": "bob"})
    assert [s.identifier for s in status.services] == [system.identifier]
    # The rows become TychoService objects natively: no response dict, no row dicts
    # (kube_status_request, the dict-returning call, is not made).
    assert crossings == {"kube_status_object": 1}
    assert type(status) is _native.TychoStatus and type(status.services[0]) is _native.TychoService
    crossings.clear()
    updated = context.update({"tycho-guid": system.identifier, "labels": {"tier": "gold"}, "cpu": "1"})
    assert updated["status"] == "success" and updated["result"]["patches"], updated
    assert crossings == {"kube_modify_request": 1}
    crossings.clear()
    assert context.delete({"name": system.identifier})["status"] == "success"
    assert crossings == {"kube_delete_request": 1}


def test_client_and_actions_cross_once(cluster, crossings):  # noqa: F811
    client = TychoClient()
    tycho().get_compute()  # the shared Tycho and its configuration, made on first use
    crossings.clear()
    started = client.start(start_request("cyd"))
    cluster.guids.append(started.identifier)
    assert crossings == {"kube_start_request": 1}
    crossings.clear()
    assert [s.identifier for s in client.status({"name": started.identifier}).services] == [started.identifier]
    assert crossings == {"kube_status_object": 1}
    crossings.clear()
    response = StartSystemResource().post(start_request("dee"))
    assert response["status"] == "success", response
    cluster.guids.append(response["result"]["sid"])
    assert crossings == {"kube_start_request": 1}
    crossings.clear()
    assert StatusSystemResource().post({"username": "dee"})["status"] == "success"
    assert DeleteSystemResource().post({"name": response["result"]["sid"]})["status"] == "success"
    assert crossings == {"kube_status_request": 1, "kube_delete_request": 1}


def test_a_bad_request_is_refused_in_the_same_crossing(crossings):
    tycho().get_compute()
    crossings.clear()
    response = StartSystemResource().post({"name": "x"})
    assert response["status"] == "error" and "required property" in response["message"]
    assert crossings == {"kube_start_request": 1}


def test_status_keeps_the_request_patch_point(cluster, crossings, monkeypatch):  # noqa: F811
    """With ``TychoClient.request`` patched (as the original's suites do), ``status`` asks
    the patch and builds its TychoStatus from the response dict it returns."""
    client = TychoClient()
    started = client.start(start_request("eve"))
    cluster.guids.append(started.identifier)
    seen = []

    def request(self, service, request):
        seen.append(service)
        return {"status": "success", "result": [{"name": "n", "app_id": "a", "ip_address": "1.2.3.4", "port": 80,
                                                  "sid": "s1", "reason": "because"}], "message": "m"}

    monkeypatch.setattr(TychoClient, "request", request)
    crossings.clear()
    status = client.status({"name": started.identifier})
    assert seen == ["status"] and not crossings
    assert [(s.identifier, s.ip_address, s.reason) for s in status.services] == [("s1", "1.2.3.4", "because")]
    assert status.message == "m"
