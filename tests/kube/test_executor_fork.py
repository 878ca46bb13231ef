"""The executor after os.fork() (gunicorn workers): one runtime and one client per
process, made again in the child. The parent starts and lists a system, forks, and the
child lists (and starts and deletes) through the same module; both succeed."""

import os

import pytest
from cluster import cluster_fixture, compute, start  # noqa: F401 - fixture and helpers
from forking import run_in_child
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho.core import Tycho

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_parent_and_child_both_work(cluster):
    system, _ = start(cluster)
    guid = system.identifier
    parent_rows = compute().status(guid)
    assert [r["sid"] for r in parent_rows] == [guid]

    def child():
        rows = compute().status(guid)
        other = Tycho().parse(__import__("test_executor").start_request(username="forked"))
        result = compute().start(other)
        listed = [r["sid"] for r in compute().status(username="forked")]
        compute().delete(other.identifier)
        return {"rows": [r["sid"] for r in rows], "started": result["sid"], "listed": listed,
                "pid": os.getpid()}

    answer = run_in_child(child)
    assert answer["rows"] == [guid]
    assert answer["listed"] == [answer["started"]]
    assert answer["pid"] != os.getpid()
    # The parent's runtime and client still work after the fork.
    assert [r["sid"] for r in compute().status(guid)] == [guid]
    assert compute().status(username="forked") == []


def test_child_of_a_child(cluster):
    system, _ = start(cluster)

    def grandchild():
        return [r["sid"] for r in compute().status(system.identifier)]

    def child():
        first = [r["sid"] for r in compute().status(system.identifier)]
        return {"child": first, "grandchild": run_in_child(grandchild)}

    answer = run_in_child(child)
    assert answer == {"child": [system.identifier], "grandchild": [system.identifier]}


def test_fork_before_first_use(cluster):
    """A child forked before the parent ever used the executor makes its own."""
    system = Tycho().parse(__import__("test_executor").start_request(username="early"))
    cluster.guids.append(system.identifier)

    def child():
        return compute().start(system)["sid"]

    assert run_in_child(child) == system.identifier
    assert [r["sid"] for r in compute().status(system.identifier)] == [system.identifier]
