"""The asyncio variants: ``await context.astart(...)``, ``await client.astatus(...)``, ...

Each runs its blocking counterpart on a worker thread of the native tokio runtime
(``tycho._native.aio_call``), so awaited calls overlap wherever the work releases the
GIL (HTTP, compilation, the Kubernetes executor). Checked with asyncio.gather against
NullContext, the compile path, patched slow requests and, when this build has the
executor, the emulated Kubernetes API server.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import time
from unittest import mock

import pytest
from forking import run_in_child
from tycho import _native
from tycho.client import TychoClient, TychoStatus, TychoSystem
from tycho.context import NullContext, Principal, TychoContext
from tycho.exceptions import TychoException

COMPOSE = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "jupyter/datascience-notebook:2024-01-01",
            "ports": ["8888"],
            "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G"},
                                     "reservations": {"cpus": "0.5", "memory": "512M"}}},
        }
    },
}

RESOURCES = {"deploy": {"resources": {"limits": {"cpus": 1.0, "memory": "1G", "gpus": 0},
                                      "reservations": {"cpus": 0.5, "memory": "512M", "gpus": 0}}}}


def start_request(username="jdoe"):
    return {
        "name": "jupyter-ds",
        "principal": json.dumps({"username": username, "access_token": "tok", "host": "h.example.org"}),
        "serviceaccount": "default",
        "env": {},
        "system": json.loads(json.dumps(COMPOSE)),
        "services": {"jupyter-ds": {"port": "8888", "clients": []}},
    }


def started(request):
    name = request["name"]
    return {"status": "success", "message": "", "result": {
        "name": f"{name}-g", "sid": "g", "conn_string": "",
        "containers": {k: {"ip_address": None, "port-1": int(v["port"])} for k, v in request["services"].items()}}}


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)


def test_null_context_gather():
    null = NullContext(product="braini")

    async def main():
        return await asyncio.gather(
            null.astart(Principal("u"), "imagej"),
            null.astart(Principal("u"), "imagej", RESOURCES, "h", {"A": "1"}),
            null.astatus({"username": "u"}),
            null.adelete({"name": "x"}),
            null.aupdate({"tycho-guid": "x"}),
        )

    first, second, status, deleted, updated = asyncio.run(main())
    assert isinstance(first, TychoSystem) and first.name == "ImageJ Viewer" and second.services[0].port == 8080
    assert isinstance(status, TychoStatus) and len(status.services) == 5
    assert deleted is None and updated["status"] == "success"


def test_client_calls_overlap_and_patches_apply():
    """Eight awaited calls whose request blocks (releasing the GIL) are all in flight at
    once: each waits at a barrier of eight, which only opens when they overlap (no
    wall-clock threshold, so a busy machine cannot make it fail)."""
    calls = []
    barrier = threading.Barrier(8, timeout=60)

    def slow_request(self, service, request):
        calls.append(service)
        barrier.wait()  # BrokenBarrierError if the calls ran one after another
        if service == "start":
            return started(request)
        if service == "status":
            return {"status": "success", "result": [], "message": service}
        return {"status": "success", "result": {}, "message": service}

    client = TychoClient()

    async def main():
        return await asyncio.gather(
            *[client.astart(start_request(f"user{i}")) for i in range(4)],
            client.astatus({"username": "jdoe"}),
            client.adelete({"name": "g"}),
            client.amodify({"tycho-guid": "g", "labels": {"a": "b"}}),
            client.astatus({}),
        )

    with mock.patch.object(TychoClient, "request", slow_request):
        results = asyncio.run(main())
    assert sorted(calls) == sorted(["start"] * 4 + ["status", "delete", "modify", "status"])
    assert all(isinstance(r, TychoSystem) for r in results[:4])
    assert isinstance(results[4], TychoStatus) and results[5]["message"] == "delete"
    assert results[6]["message"] == "modify"


def test_event_loop_stays_responsive():
    """While a call blocks on its worker thread, other coroutines keep running: the call
    waits until a coroutine on the loop has ticked ten times (it would wait forever,
    up to the generous timeout, if the loop were blocked)."""
    ticked = threading.Event()

    def slow_request(self, service, request):
        assert ticked.wait(timeout=60), "the event loop did not run while the call blocked"
        return {"status": "success", "result": [], "message": ""}

    async def ticker(stop):
        ticks = 0
        while not stop.is_set():
            ticks += 1
            if ticks == 10:
                ticked.set()
            await asyncio.sleep(0.01)
        return ticks

    async def main():
        stop = asyncio.Event()
        task = asyncio.ensure_future(ticker(stop))
        await TychoClient().astatus({})
        stop.set()
        return await task

    with mock.patch.object(TychoClient, "request", slow_request):
        assert asyncio.run(main()) >= 10


def test_context_astart_goes_through_start_and_patched_start(monkeypatch):
    spec = {"version": "3.0", "services": {"jupyter-ds": json.loads(json.dumps(COMPOSE["services"]["jupyter-ds"]))}}
    monkeypatch.setattr(TychoContext, "get_spec", lambda self, app_id: json.loads(json.dumps(spec)))
    monkeypatch.setattr(TychoContext, "get_settings", lambda self, app_id: "A=1\n")
    context = TychoContext(product="braini")

    barrier = threading.Barrier(5, timeout=60)

    def fake_start(request):
        barrier.wait()  # opens only when all five starts are in flight together
        return TychoSystem(**started(request))

    async def main():
        return await asyncio.gather(*[
            context.astart(Principal(f"u{i}", "tok-secret"), "jupyter-ds", RESOURCES, "h", {"K": str(i)})
            for i in range(5)])

    with mock.patch.object(TychoContext, "_start", side_effect=fake_start) as patched:
        systems = asyncio.run(main())
    assert [s.identifier for s in systems] == ["g"] * 5
    envs = sorted(json.loads(c[0][0]["principal"])["extra_container_env"]["K"] for c in patched.call_args_list)
    assert envs == ["0", "1", "2", "3", "4"]


def test_errors_propagate():
    error = {"status": "error", "result": {"error": "nope"}, "message": "nope"}

    async def main():
        with mock.patch.object(TychoClient, "request", return_value=error):
            return await TychoClient().astart(start_request())

    with pytest.raises(TychoException, match="status:error"):
        asyncio.run(main())

    async def unknown_app():
        return await NullContext(product="common").astart(Principal("u"), "no-such-app")

    with pytest.raises(TychoException, match="not in the common registry"):
        asyncio.run(unknown_app())


def test_contextvars_are_copied_into_the_worker():
    var = contextvars.ContextVar("request_id", default="unset")

    def read():
        return var.get()

    async def main():
        var.set("r-42")
        return await _native.aio_call(read)

    assert asyncio.run(main()) == "r-42"
    with pytest.raises(TypeError):
        _native.aio_call(42)


def test_compile_path_in_parallel():
    """The native compiler (GIL released) called from several awaited calls at once."""

    async def main():
        return await asyncio.gather(*[
            _native.aio_call(_native.compile_request, start_request(f"user{i}"), identifier=f"{i:032x}")
            for i in range(8)])

    results = asyncio.run(main())
    for i, objects in enumerate(results):
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        assert deployment["metadata"]["labels"]["username"] == f"user{i}"
        assert deployment["metadata"]["labels"]["tycho-guid"] == f"{i:032x}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_async_in_a_forked_child():
    """The runtime used in the parent is not reused in a forked child: the child makes its own."""

    async def main():
        return await asyncio.gather(*[_native.aio_call(lambda i=i: i * 2) for i in range(4)])

    assert asyncio.run(main()) == [0, 2, 4, 6]
    # A forked child (a gunicorn worker) gets a runtime of its own.
    assert run_in_child(lambda: asyncio.run(main()), timeout=30) == [0, 2, 4, 6]
    assert asyncio.run(main()) == [0, 2, 4, 6]  # the parent's runtime still works


# ---------------------------------------------------------------- against the emulated cluster

from cluster import cluster_fixture  # noqa: F401, E402 - the `cluster` fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401, E402 - pytest fixtures


def test_client_async_against_emulator(cluster):
    client = TychoClient()
    users = ["ann", "bob", "cyd"]

    async def start_all():
        return await asyncio.gather(*[client.astart(start_request(u)) for u in users])

    systems = asyncio.run(start_all())
    cluster.guids.extend(s.identifier for s in systems)
    assert len({s.identifier for s in systems}) == 3

    async def status_all():
        return await asyncio.gather(*[client.astatus({"username": u}) for u in users])

    statuses = asyncio.run(status_all())
    for user, status, system in zip(users, statuses, systems):
        (row,) = status.services
        assert (row.username, row.identifier) == (user, system.identifier)

    async def modify_and_delete():
        modified = await client.amodify({"tycho-guid": systems[0].identifier, "labels": {"tier": "x"},
                                         "cpu": "1", "memory": "1G"})
        deleted = await asyncio.gather(*[client.adelete({"name": s.identifier}) for s in systems])
        remaining = await client.astatus({"username": "ann"})
        return modified, deleted, remaining

    modified, deleted, remaining = asyncio.run(modify_and_delete())
    assert modified["status"] == "success" and modified["result"]["patches"]
    assert all(d["status"] == "success" for d in deleted)
    assert remaining.services == []


def test_starts_overlap_against_a_slow_api_server(cluster):
    """With 150 ms added to every API request, three awaited starts take about as
    long as one: the executor's calls run in parallel on the worker threads."""
    cluster.control.latency(500)  # long next to the machine's own (busy) time
    client = TychoClient()
    try:
        begin = time.monotonic()
        one = client.start(start_request("solo"))
        single = time.monotonic() - begin
        cluster.guids.append(one.identifier)

        async def three():
            return await asyncio.gather(*[client.astart(start_request(f"par{i}")) for i in range(3)])

        begin = time.monotonic()
        systems = asyncio.run(three())
        parallel = time.monotonic() - begin
        cluster.guids.extend(s.identifier for s in systems)
    finally:
        cluster.control.latency(0)
    assert parallel < 2 * single, f"one start {single:.2f}s, three awaited starts {parallel:.2f}s"
