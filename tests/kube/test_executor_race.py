"""Delete wins over a start in flight (issue 9).

A start of a system and a delete of its GUID run at the same time; one of the start's
API calls is held by the kube emulator (a delay fault) until the delete has returned.
Whatever the step, once both calls have returned nothing labelled with the GUID is left
in the store (the emulator has no garbage collector to hide a leak), and the start
raised StartException saying the system was deleted.

The delete runs in this process (a start in flight here is cancelled) or in another
process (`tycho down`, which this process cannot see: the start notices that its
Deployment vanished). Across processes, a delete that ends before the Deployment exists
cannot be seen by the start; the GUID of a system is only known to others (status) once
its Deployment exists, so those steps are not run from another process.

Needs the emulator's fault API: with TYCHO_TEST_KUBECONFIG (a real cluster) these skip.
"""

import os
import subprocess
import sys
import threading
import time

import pytest
from cluster import cluster_fixture, compute, start_request  # noqa: F401 - fixture and helpers
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho.core import Tycho
from tycho.exceptions import StartException

HOLD_MS = 3000
# (step, method, path regex, whether the Deployment exists while the call is held)
STEPS = [
    ("read-ambassador", "GET", r"/services/ambassador$", False),
    ("read-secret", "GET", r"/secrets/jupyter-ds-env$", False),
    ("create-deployment", "POST", r"/deployments$", False),
    ("create-service", "POST", r"/services$", True),
    ("create-networkpolicy", "POST", r"/networkpolicies$", True),
    ("read-back-deployment", "GET", r"/deployments/jupyter-ds-[0-9a-f]+$", True),
]


def wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def delete_elsewhere(cluster, guid):
    """`tycho down GUID` in another process (same kubeconfig and namespace)."""
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig, NAMESPACE=cluster.namespace)
    out = subprocess.run([sys.executable, "-m", "tycho", "down", guid], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def race(cluster, method, path, delete):
    """Starts a system with `method path` held, deletes it meanwhile; returns (guid, the
    start's exception or None)."""
    emu = cluster.control
    emu.faults(method=method, path_regex=path, delay_ms=HOLD_MS)
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"]))
    guid = system.identifier
    cluster.guids.append(guid)
    outcome = {}

    def run_start():
        try:
            outcome["result"] = compute().start(system)
        except Exception as e:  # noqa: BLE001 - the outcome is asserted below
            outcome["error"] = e

    thread = threading.Thread(target=run_start)
    thread.start()
    try:
        wait_for(lambda: emu.list_faults()[0]["fired"] >= 1, f"the start to reach {method} {path}")
        delete(guid)
        assert thread.is_alive() or "error" in outcome, "the delete did not overlap the held call"
    finally:
        thread.join(timeout=120)
    assert not thread.is_alive(), "start did not return"
    return guid, outcome.get("error"), outcome.get("result")


def assert_deleted_start(cluster, guid, error, result):
    assert result is None, f"start succeeded after the delete: {result}"
    assert isinstance(error, StartException), repr(error)
    assert "deleted while it was starting" in str(error), str(error)
    cluster.control.clear_faults()
    assert cluster.objects(guid) == []
    leftovers = [o for o in cluster.control.objects() if guid in o["metadata"]["name"]]
    assert leftovers == []


@pytest.mark.parametrize("step,method,path,_exists", STEPS, ids=[s[0] for s in STEPS])
def test_delete_in_this_process_wins_at_every_step(cluster, step, method, path, _exists):
    guid, error, result = race(cluster, method, path, lambda g: compute().delete(g))
    assert_deleted_start(cluster, guid, error, result)


@pytest.mark.parametrize("step,method,path", [s[:3] for s in STEPS if s[3]], ids=[s[0] for s in STEPS if s[3]])
def test_delete_from_another_process_wins_once_the_deployment_exists(cluster, step, method, path):
    guid, error, result = race(cluster, method, path, lambda g: delete_elsewhere(cluster, g))
    assert_deleted_start(cluster, guid, error, result)


def test_delete_between_stage_2_and_3_with_latency_everywhere(cluster):
    """Every API call slowed down, the delete (elsewhere) lands between the Deployment and
    the Services: the start cleans up and fails; nothing stays."""
    emu = cluster.control
    emu.latency(100)
    guid, error, result = race(cluster, "POST", r"/services$", lambda g: delete_elsewhere(cluster, g))
    emu.latency(0)
    assert_deleted_start(cluster, guid, error, result)


def test_a_start_after_a_delete_is_not_cancelled(cluster):
    system = Tycho().parse(start_request())
    cluster.guids.append(system.identifier)
    assert compute().delete(system.identifier) == {}
    result = compute().start(system)
    assert result["sid"] == system.identifier
    assert sorted(o["kind"] for o in cluster.objects(system.identifier)) == ["Deployment", "Secret", "Service"]


def test_every_object_a_start_creates_is_owned_by_the_deployment(cluster):
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"]))
    cluster.guids.append(system.identifier)
    compute().start(system)
    objects = cluster.objects(system.identifier)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    others = [o for o in objects if o["kind"] != "Deployment"]
    assert sorted(o["kind"] for o in others) == ["NetworkPolicy", "Secret", "Service"]
    for o in others:
        (owner,) = o["metadata"]["ownerReferences"]
        assert owner["kind"] == "Deployment" and owner["apiVersion"] == "apps/v1"
        assert owner["name"] == deployment["metadata"]["name"]
        assert owner["uid"] == deployment["metadata"]["uid"]
