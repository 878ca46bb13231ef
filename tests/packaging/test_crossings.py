"""Native crossings per public operation, counted two ways while each operation runs
against real parts (a registry served over HTTP, the kube emulator, the Docker Engine):
``crossings`` wraps every function of ``tycho._native`` with a counter; ``entries``
sees every entry from Python into the core, the methods of the native classes
(``TychoContext``, ``TychoClient``) included (``sys.setprofile``).

Each public operation of ``TychoContext`` and ``TychoClient`` is one entry. ``start``
builds the request with the core's builder, then calls ``self._start`` (the named
mock.patch point of the original's suites), whose client checks, compiles and starts it
without returning to Python while ``_start``, ``TychoClient.start`` / ``request``, the
handlers of ``tycho.actions`` and the compute's methods are tycho's own; a replaced one
is asked (the step-by-step way, with a second crossing after it). A status reads the
rows into native ``TychoService`` objects, with no dict between.

Every other operation makes one call of a ``_native`` function: each public operation
of ``KubernetesCompute`` (on the kube emulator) and of ``DockerComposeCompute`` (images
built locally: tests/support/docker_engine.py), on a parsed or a hand-built ``System``,
and each request of ``tycho.actions`` on either.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import sys
import types
import uuid
from pathlib import Path

import pytest
from cluster import cluster_fixture  # noqa: F401 - the `cluster` fixture
from docker_engine import Engine, build_httpd_image
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from static_site import serve
from tycho import _native, actions
from tycho.actions import (
    DeleteSystemResource,
    ModifySystemResource,
    StartSystemResource,
    StatusSystemResource,
    tycho,
)
from tycho.client import TychoClient, TychoSystem
from tycho.config import Config
from tycho.context import Principal, TychoContext
from tycho.core import Tycho
from tycho.dockerc import DockerComposeCompute
from tycho.exceptions import ModifyException, StartException
from tycho.kube import KubernetesCompute
from tycho.model import Container, ModifySystem, System

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
def entries():
    """A Counter of every entry from Python into the native core while the test runs: a
    ``_native`` function, or a method of a native class (``TychoContext.start``), by name
    (``sys.setprofile``'s ``c_call`` events of this thread). Calls the core makes itself
    (a native method calling another through attribute lookup) are not entries."""
    native = tuple(v for v in vars(_native).values() if isinstance(v, type))
    counts: collections.Counter[str] = collections.Counter()

    def profile(frame, event, arg):
        if event != "c_call":
            return
        if getattr(arg, "__module__", None) == "tycho._native":
            counts[arg.__name__] += 1
        elif isinstance(getattr(arg, "__self__", None), native):
            counts[arg.__qualname__] += 1

    sys.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)


@pytest.fixture
def registry_url(tmp_path):
    """The small test registry served over HTTP."""
    root = tmp_path / "registry"
    shutil.copytree(REGISTRY, root)
    with serve(root) as url:
        yield url


def start_request(username: str, compose: dict | None = None) -> dict:
    compose = compose or {"services": {"web": {"image": "nginx:1.25", "ports": ["8080"]}}}
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


def test_context_start_crosses_once(cluster, registry_url, crossings, entries):  # noqa: F811
    context = TychoContext(product="shop", tycho_config_url=registry_url)
    first = context.start(Principal("ann"), "hello", None, "h.example.org")  # cold: fills the caches
    cluster.guids.append(first.identifier)
    crossings.clear()
    entries.clear()
    system = context.start(Principal("ann"), "hello", None, "h.example.org", {"COURSE": "bio101"})
    cluster.guids.append(system.identifier)
    assert isinstance(system, TychoSystem) and [s.name for s in system.services] == ["hello"]
    # TychoContext.start is native: it builds the request with the core's builder, then
    # (through TychoContext._start, the mock.patch point, and the client) checks,
    # compiles and starts it, without returning to Python: no _native function is called.
    assert entries == {"TychoContext.start": 1} and not crossings
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FROM_REGISTRY"] == "yes" and env["COURSE"] == "bio101"
    # The awaitable variant adds the hand-over to a worker thread.
    crossings.clear()
    awaited = asyncio.run(context.astart(Principal("ann"), "hello", None, "h.example.org"))
    cluster.guids.append(awaited.identifier)
    assert crossings == {"aio_call": 1}


def test_context_status_update_and_delete_cross_once(cluster, registry_url, entries):  # noqa: F811
    context = TychoContext(product="shop", tycho_config_url=registry_url)
    system = context.start(Principal("bob"), "hello", None, "h")
    cluster.guids.append(system.identifier)
    entries.clear()
    status = context.status({"username": "bob"})
    assert [s.identifier for s in status.services] == [system.identifier]
    # The rows become TychoService objects natively: no response dict, no row dicts.
    assert entries == {"TychoContext.status": 1}
    assert type(status) is _native.TychoStatus and type(status.services[0]) is _native.TychoService
    entries.clear()
    updated = context.update({"tycho-guid": system.identifier, "labels": {"tier": "gold"}, "cpu": "1"})
    assert updated["status"] == "success" and updated["result"]["patches"], updated
    assert entries == {"TychoContext.update": 1}
    entries.clear()
    assert context.delete({"name": system.identifier})["status"] == "success"
    assert entries == {"TychoContext.delete": 1}


def test_client_and_actions_cross_once(cluster, crossings, entries):  # noqa: F811
    client = TychoClient()
    tycho().get_compute()  # the shared Tycho and its configuration, made on first use
    entries.clear()
    started = client.start(start_request("cyd"))
    cluster.guids.append(started.identifier)
    assert entries == {"TychoClient.start": 1}
    entries.clear()
    assert [s.identifier for s in client.status({"name": started.identifier}).services] == [started.identifier]
    assert entries == {"TychoClient.status": 1}
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


def hand_built(image: str, identifier: str, username: str, port: int = 80, command=None) -> System:
    """A System made with the original's constructors (not parsed from a request)."""
    container = Container(name="web", image=image, command=command, ports=[{"containerPort": port}],
                          limits={"cpus": "0.5", "memory": "64M"})
    return System(
        config=Config(), name="web", principal={"username": username}, service_account="default",
        conn_string="", proxy_rewrite={"enabled": False, "target": None}, containers=[container],
        identifier=identifier, gitea_integration=False, services={"web": {"port": port}},
    )


def test_each_kubernetes_compute_operation_crosses_once(cluster, crossings, monkeypatch):  # noqa: F811
    emu = cluster.control  # a second namespace exists only on the emulator for sure
    monkeypatch.setenv("NAMESPACE", "team-x")  # the executor's rule, inside the one call
    compute = KubernetesCompute(Config())
    system = hand_built("nginx:1.27", uuid.uuid4().hex, "kay")

    def namespaces():
        return {o["metadata"]["namespace"] for o in emu.objects()
                if (o["metadata"].get("labels") or {}).get("tycho-guid") == system.identifier}

    crossings.clear()
    started = compute.start(system)
    assert started["sid"] == system.identifier
    assert crossings == {"kube_start": 1}
    assert namespaces() == {"team-x"}
    modify = ModifySystem.parse_modify(Config(), system.identifier, {"tier": "gold"}, "1", None)
    steps = [
        ("status", lambda: compute.status(system.identifier), "kube_status"),
        ("modify", lambda: compute.modify(modify), "kube_modify"),
        ("stop", lambda: compute.stop(system.identifier), "system_stop"),
        ("resume", lambda: compute.resume(system.identifier), "system_resume"),
        ("touch", lambda: compute.touch(system.identifier), "system_touch"),
        ("cull", lambda: compute.cull(idle="1h", dry_run=True), "system_cull"),
        ("delete", lambda: compute.delete(system.identifier), "kube_delete"),
    ]
    for name, call, native in steps:
        crossings.clear()
        outcome = call()
        assert crossings == {native: 1}, name
        if name == "status":
            assert [r["sid"] for r in outcome] == [system.identifier]
        if name == "modify":
            assert outcome["patches"]
    assert namespaces() == set()


def test_parse_modify_is_the_core_s_rule_in_one_crossing(crossings):
    core = Tycho()
    crossings.clear()
    modify = core.parse_modify({"tycho-guid": "g", "labels": None, "cpu": "1"})
    assert (modify.guid, modify.labels, modify.resources, modify.patch) == ("g", {}, {"cpu": "1"}, True)
    assert crossings == {"modify_model": 1}


# ------------------------------------------------------------------ the Docker backplane

ENGINE = Engine()


@pytest.fixture(scope="module")
def docker_image(tmp_path_factory):
    """The test httpd image, built on this machine's Engine (no registry)."""
    if not ENGINE.reachable():
        reason = f"no Docker Engine answers at {ENGINE.path}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the Docker crossings must be counted in CI")
        pytest.skip(reason)
    return build_httpd_image(ENGINE, tmp_path_factory.mktemp("httpd"))


@pytest.fixture
def docker_guids(monkeypatch, tmp_path):
    """GUIDs a test starts on the Engine; everything labelled with them goes afterwards."""
    monkeypatch.setenv("TYCHO_DOCKER_ENV_DIR", str(tmp_path))
    for name in ("TYCHO_DOCKER_BIND_ADDRESS", "TYCHO_DOCKER_HOST_PORTS", "TYCHO_DOCKER_PULL", "REST_API"):
        monkeypatch.delenv(name, raising=False)
    guids: list[str] = []
    yield guids
    for guid in guids:
        ENGINE.purge(guid)


def docker_request(image: str, username: str) -> dict:
    """A start request of the test httpd image (serving port 8080)."""
    web = {"image": image, "entrypoint": ["/httpd"], "command": ["serve", "8080"], "ports": ["8080"]}
    return start_request(username, {"services": {"web": web}})


def test_each_docker_compute_operation_crosses_once(docker_image, docker_guids, crossings):
    compute = DockerComposeCompute(Config())
    user = f"tcross-{uuid.uuid4().hex[:8]}"
    system = hand_built(docker_image, uuid.uuid4().hex, user, port=8080, command=["/httpd", "serve", "8080"])
    docker_guids.append(system.identifier)
    crossings.clear()
    started = compute.start(system)
    assert started["sid"] == system.identifier and set(started["containers"]) == {"web"}
    assert crossings == {"docker_start": 1}
    assert [c["Labels"]["tycho-guid"] for c in ENGINE.containers(f"tycho-guid={system.identifier}")] == [
        system.identifier]
    modify = ModifySystem.parse_modify(Config(), system.identifier, None, "0.25", None)
    labelled = ModifySystem.parse_modify(Config(), system.identifier, {"team": "x"}, None, None)
    steps = [
        ("status", lambda: compute.status(system.identifier), "docker_status"),
        ("status by user", lambda: compute.status(username=user), "docker_status"),
        ("modify", lambda: compute.modify(modify), "docker_modify"),
        ("stop", lambda: compute.stop(system.identifier), "system_stop"),
        ("resume", lambda: compute.resume(system.identifier), "system_resume"),
        ("delete", lambda: compute.delete(system.identifier), "docker_delete"),
    ]
    for name, call, native in steps:
        crossings.clear()
        outcome = call()
        assert crossings == {native: 1}, name
        if name.startswith("status"):
            assert [r["sid"] for r in outcome] == [system.identifier]
        if name == "modify":
            assert len(outcome["patches"]) == 1
            assert ENGINE.inspect(f"{system.name}-web")["HostConfig"]["NanoCpus"] == 250_000_000
    assert ENGINE.leftovers(system.identifier)["containers"] == []
    # A refusal is one crossing too.
    crossings.clear()
    with pytest.raises(ModifyException, match="cannot change labels"):
        compute.modify(labelled)
    assert crossings == {"docker_modify": 1}


def test_each_docker_request_crosses_once(docker_image, docker_guids, crossings, monkeypatch):
    monkeypatch.setattr(actions, "_tycho", Tycho(backplane="docker-compose"))
    assert isinstance(tycho().get_compute(), DockerComposeCompute)
    user = f"tcross-{uuid.uuid4().hex[:8]}"
    crossings.clear()
    response = StartSystemResource().post(docker_request(docker_image, user))
    assert response["status"] == "success", response
    guid = response["result"]["sid"]
    docker_guids.append(guid)
    assert response["message"] == f"Started system web-{guid}"
    assert crossings == {"docker_start_request": 1}
    crossings.clear()
    status = StatusSystemResource().post({"username": user})
    assert [r["sid"] for r in status["result"]] == [guid]
    assert crossings == {"docker_status_request": 1}
    crossings.clear()
    modified = ModifySystemResource().post({"tycho-guid": guid, "memory": "96Mi"})
    assert modified["status"] == "success" and len(modified["result"]["patches"]) == 1, modified
    assert crossings == {"docker_modify_request": 1}
    crossings.clear()
    assert DeleteSystemResource().post({"name": guid})["status"] == "success"
    assert crossings == {"docker_delete_request": 1}
    assert ENGINE.leftovers(guid)["containers"] == []
    # A request the API schema refuses is refused in the same crossing, before the Engine.
    crossings.clear()
    refused = StartSystemResource().post({"name": "x"})
    assert refused["status"] == "error" and "required property" in refused["message"]
    assert crossings == {"docker_start_request": 1}


def test_a_replaced_docker_method_gets_the_step_by_step_path(docker_image, docker_guids, crossings, monkeypatch):
    """A subclass (or a mock.patch) that replaces ``start`` is called with the parsed
    model: the request is checked and parsed on the Python side, then handed to it."""
    seen = []

    class Recording(DockerComposeCompute):
        def start(self, system, namespace="default"):
            seen.append(system.name)
            return super().start(system)

    core = Tycho(backplane="docker-compose")
    core.compute = Recording(core.config)
    monkeypatch.setattr(actions, "_tycho", core)
    user = f"tcross-{uuid.uuid4().hex[:8]}"
    crossings.clear()
    response = StartSystemResource().post(docker_request(docker_image, user))
    assert response["status"] == "success", response
    docker_guids.append(response["result"]["sid"])
    assert seen == [f"web-{response['result']['sid']}"]
    assert crossings["docker_start"] == 1 and "docker_start_request" not in crossings


def test_a_patched_kubernetes_method_gets_the_step_by_step_path(crossings):
    """``mock.patch.object(KubernetesCompute, "status")`` (as the original's suites patch
    the compute): the request is checked on the Python side, then the patched method runs."""
    from unittest import mock

    compute = tycho().get_compute()
    assert isinstance(compute, KubernetesCompute)
    crossings.clear()
    with mock.patch.object(KubernetesCompute, "status", return_value=[{"sid": "x"}]) as status:
        response = StatusSystemResource().post({"username": "zed"})
    assert response["status"] == "success" and response["result"] == [{"sid": "x"}], response
    status.assert_called_once_with(None, "zed")
    assert crossings == {"validate_request": 1}


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


def test_each_public_operation_enters_the_core_once(cluster, registry_url, entries):  # noqa: F811
    """Counted at the boundary itself: the context's and the client's operations are
    native methods that run the request in the same crossing when nothing on the way
    (``_start``, ``TychoClient.start`` / ``request``, the handlers of ``tycho.actions``,
    the compute's methods) is replaced."""
    context = TychoContext(product="shop", tycho_config_url=registry_url)
    cluster.guids.append(context.start(Principal("fay"), "hello", None, "h").identifier)  # cold
    entries.clear()
    system = context.start(Principal("fay"), "hello", None, "h")
    cluster.guids.append(system.identifier)
    assert entries == {"TychoContext.start": 1}
    entries.clear()
    assert [s.identifier for s in context.status({"name": system.identifier}).services] == [system.identifier]
    assert entries == {"TychoContext.status": 1}
    entries.clear()
    assert context.update({"tycho-guid": system.identifier, "labels": {"tier": "b"}})["status"] == "success"
    assert entries == {"TychoContext.update": 1}
    entries.clear()
    assert context.delete({"name": system.identifier})["status"] == "success"
    assert entries == {"TychoContext.delete": 1}

    client = TychoClient()
    entries.clear()
    started = client.start(start_request("gus"))
    cluster.guids.append(started.identifier)
    assert entries == {"TychoClient.start": 1}
    for operation, request in (("status", {"username": "gus"}),
                               ("modify", {"tycho-guid": started.identifier, "cpu": "1"}),
                               ("delete", {"name": started.identifier})):
        entries.clear()
        getattr(client, operation)(request)
        assert entries == {f"TychoClient.{operation}": 1}, operation
    # A refused request answers as the handler does, in the same single crossing.
    entries.clear()
    with pytest.raises(StartException, match="required property"):
        client.start({"name": "x"})
    assert entries == {"TychoClient.start": 1}
    entries.clear()
    refused = client.delete({})
    assert refused["status"] == "error" and refused["message"], refused
    assert entries == {"TychoClient.delete": 1}


def test_a_replaced_handler_takes_the_handlers_way(cluster, entries, monkeypatch):  # noqa: F811
    """With a handler method patched (as a test suite may), the client asks the handler."""
    seen = []
    original = StartSystemResource.post

    def post(self, request):
        seen.append(request["name"])
        return original(self, request)

    monkeypatch.setattr(StartSystemResource, "post", post)
    client = TychoClient()
    started = client.start(start_request("hal"))
    cluster.guids.append(started.identifier)
    assert seen == ["web"] and started.services
