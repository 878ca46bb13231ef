"""Fault injection: every API call start, delete and modify make, failed once (retried
to success) or always (a clear error and nothing left behind / nothing half-applied).

Needs the kube emulator's fault API: with TYCHO_TEST_KUBECONFIG (a real cluster) these
tests skip.
"""

import time

import pytest
from cluster import cluster_fixture, compute, start, start_request  # noqa: F401 - fixture and helpers
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho.core import Tycho
from tycho.exceptions import DeleteException, ModifyException, StartException, TychoException

# (method, path regex, object named in the error; {guid} is the system's GUID)
START_CALLS = [
    ("GET", r"/services/ambassador$", 'Service "ambassador"'),
    ("GET", r"/secrets/jupyter-ds-env$", 'Secret "jupyter-ds-env"'),
    ("GET", r"/persistentvolumeclaims/present-data$", 'PersistentVolumeClaim "present-data"'),
    ("POST", r"/deployments$", 'Deployment "jupyter-ds-{guid}"'),
    ("POST", r"/services$", 'Service "jupyter-ds-{guid}"'),
    ("POST", r"/networkpolicies$", 'NetworkPolicy "jupyter-ds-{guid}-netpolicy"'),
    # the token Secret (the principal has an access token; access_token_env: secret)
    ("POST", r"/secrets$", 'Secret "jupyter-ds-{guid}-tokens"'),
    # Stage 4 (issue 9): the Deployment read back.
    ("GET", r"/deployments/jupyter-ds-[0-9a-f]+$", 'Deployment "jupyter-ds-{guid}"'),
]
STARTED_KINDS = ["Deployment", "NetworkPolicy", "Secret", "Service"]
FAULTS = {
    "500": {"status": 500},
    "429": {"status": 429},
    "503": {"status": 503},
    "drop": {"drop": True},
}
CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "present-data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def parsed(cluster):
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"], volumes=["pvc://present-data:/data"]))
    cluster.guids.append(system.identifier)
    return system


def kinds(cluster, guid):
    return sorted(o["kind"] for o in cluster.objects(guid))


def wait_until(predicate, timeout=30.0):
    """Polls ``predicate`` until it holds (a generous deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("call", START_CALLS, ids=lambda c: f"{c[0]} {c[1]}")
def test_start_retries_a_single_failure(cluster, call, fault):
    emu = cluster.control
    cluster.create(CLAIM)
    method, path, _ = call
    emu.faults(method=method, path_regex=path, **FAULTS[fault])
    system = parsed(cluster)
    result = compute().start(system)
    assert result["sid"] == system.identifier
    assert [f["fired"] for f in emu.list_faults()] == [1]
    assert kinds(cluster, system.identifier) == STARTED_KINDS
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    (service,) = cluster.of_kind(system.identifier, "Service")
    (secret,) = cluster.of_kind(system.identifier, "Secret")
    assert service["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
              if "persistentVolumeClaim" in v]
    assert "present-data" in claims


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("call", START_CALLS, ids=lambda c: f"{c[0]} {c[1]}")
def test_start_that_keeps_failing_leaves_nothing(cluster, call, fault):
    emu = cluster.control
    cluster.create(CLAIM)
    method, path, named = call
    emu.faults(method=method, path_regex=path, every=True, **FAULTS[fault])
    system = parsed(cluster)
    with pytest.raises(StartException) as info:
        compute().start(system)
    message = str(info.value)
    assert named.format(guid=system.identifier) in message, message
    if fault != "drop":
        assert f"HTTP {fault}" in message, message
    else:
        assert "connection" in message, message
    emu.clear_faults()
    assert cluster.objects(system.identifier) == []


def test_start_create_that_times_out_is_not_duplicated(cluster, monkeypatch):
    emu = cluster.control
    monkeypatch.setenv("TYCHO_KUBE_READ_TIMEOUT", "0.5")
    # The server holds the first create past the client's read timeout, then applies it.
    emu.faults(method="POST", path_regex="/deployments$", delay_ms=1500)
    system = parsed(cluster)
    compute().start(system)
    # Wait until the held request reached the store (however busy the machine is).
    wait_until(lambda: len(cluster.of_kind(system.identifier, "Deployment")) >= 1)
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    (service,) = cluster.of_kind(system.identifier, "Service")
    assert service["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]


def test_start_create_applied_after_the_timeout_is_recognised(cluster, monkeypatch):
    emu = cluster.control
    monkeypatch.setenv("TYCHO_KUBE_READ_TIMEOUT", "0.3")
    # Held a little past the timeout: applied while the client reads back or retries,
    # so the retry meets the object (read back, or 409 AlreadyExists with our label).
    emu.faults(method="POST", path_regex="/services$", delay_ms=450)
    system = parsed(cluster)
    result = compute().start(system)
    assert result["containers"]["jupyter-ds"]["port-1"] is not None
    time.sleep(0.5)  # a late duplicate would show here; absence cannot be polled for
    assert kinds(cluster, system.identifier) == STARTED_KINDS


def test_start_times_out_as_a_whole_and_cleans_up(cluster, monkeypatch):
    emu = cluster.control
    monkeypatch.setenv("TYCHO_KUBE_TIMEOUT", "1")
    emu.faults(method="POST", path_regex="/services$", every=True, delay_ms=3000)
    system = parsed(cluster)
    started = time.monotonic()
    with pytest.raises(StartException, match="timed out") as info:
        compute().start(system)
    assert time.monotonic() - started < 5
    assert "removed" in str(info.value)
    emu.clear_faults()
    time.sleep(3.2)  # requests the server still held may land; start removed what it could
    leftovers = cluster.objects(system.identifier)
    # A Service (or token Secret) create held by the server past the deadline may still
    # be applied after the clean-up; it is owned by the deleted Deployment, so garbage
    # collection (and tycho delete) removes it. Nothing else may remain.
    assert all(o["kind"] in ("Service", "Secret") for o in leftovers), leftovers
    compute().delete(system.identifier)
    assert cluster.objects(system.identifier) == []


def test_unreachable_api_server(monkeypatch, tmp_path):
    """No cluster at all (connection refused): clear errors naming the server, at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
        "current-context: c\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("NAMESPACE", raising=False)
    system = Tycho().parse(start_request())
    with pytest.raises(StartException, match=f"connection to the Kubernetes API at http://127.0.0.1:{port}/? failed") as info:
        compute().start(system)
    assert "Unable to start system" in str(info.value) and "not-a-real-token" not in str(info.value)
    with pytest.raises(TychoException, match="connection"):
        compute().status()
    with pytest.raises(DeleteException, match="connection"):
        compute().delete("0123456789abcdef0123456789abcdef")


# ------------------------------------------------------------------ delete

DELETE_COLLECTIONS = ["deployments", "replicasets", "pods", "services", "networkpolicies", "persistentvolumeclaims",
                      "secrets"]


@pytest.mark.parametrize("fault", ["500", "429", "drop"])
@pytest.mark.parametrize("collection", DELETE_COLLECTIONS)
def test_delete_retries_a_single_failure(cluster, collection, fault):
    emu = cluster.control
    system, _ = start(cluster, clients=["10.0.0.0/8"])
    emu.set_deployment_status(cluster.namespace, system.name, pods=True)
    emu.faults(method="DELETE", path_regex=f"/{collection}$", **FAULTS[fault])
    assert compute().delete(system.identifier) == {}
    assert [f["fired"] for f in emu.list_faults()] == [1]
    assert cluster.objects(system.identifier) == []


@pytest.mark.parametrize("collection", DELETE_COLLECTIONS)
def test_delete_that_keeps_failing_is_reported_and_can_be_repeated(cluster, collection):
    emu = cluster.control
    system, _ = start(cluster, clients=["10.0.0.0/8"])
    emu.faults(method="DELETE", path_regex=f"/{collection}$", every=True, status=500)
    with pytest.raises(DeleteException) as info:
        compute().delete(system.identifier)
    assert f"cannot delete {collection} labelled tycho-guid={system.identifier}" in str(info.value)
    emu.clear_faults()
    assert compute().delete(system.identifier) == {}
    assert cluster.objects(system.identifier) == []


# ------------------------------------------------------------------ modify


def two_deployments(cluster):
    """A system plus a second Deployment with its GUID (a multi-deployment system)."""
    system, _ = start(cluster)
    cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"zz-second-{system.identifier}",
                     "labels": {"tycho-guid": system.identifier, "executor": "tycho", "username": "jdoe"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "second"}},
                 "template": {"metadata": {"labels": {"app": "second", "keep": "me"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                                       "resources": {"limits": {"cpu": "250m"}}}]}}},
    })
    return system


def templates(cluster, guid):
    return {d["metadata"]["name"]: d["spec"]["template"] for d in cluster.of_kind(guid, "Deployment")}


def modify_request(guid):
    return Tycho().parse_modify({"tycho-guid": guid, "labels": {"tier": "gold", "keep": "changed"},
                                 "cpu": "2", "memory": "3G"})


@pytest.mark.parametrize("fault", ["500", "429", "drop"])
@pytest.mark.parametrize("call", [("GET", r"/deployments$"), ("PATCH", r"/deployments/zz-second-")],
                         ids=["list", "patch"])
def test_modify_retries_a_single_failure(cluster, call, fault):
    emu = cluster.control
    system = two_deployments(cluster)
    emu.faults(method=call[0], path_regex=call[1], **FAULTS[fault])
    result = compute().modify(modify_request(system.identifier))
    assert len(result["patches"]) == 2
    for template in templates(cluster, system.identifier).values():
        assert template["metadata"]["labels"]["tier"] == "gold"
        assert all(c["resources"]["limits"]["cpu"] == "2" for c in template["spec"]["containers"])


ATTEMPTS = 5  # the executor's attempts per call (src/exec/kube/retry.rs MAX_ATTEMPTS)


@pytest.mark.parametrize("fault", ["500", "422", "drop"])
def test_modify_never_leaves_a_half_applied_patch(cluster, fault):
    emu = cluster.control
    system = two_deployments(cluster)
    before = templates(cluster, system.identifier)
    action = {"drop": True} if fault == "drop" else {"status": int(fault)}
    # Every attempt at patching the second Deployment fails; the first one is patched.
    emu.faults(method="PATCH", path_regex=r"/deployments/zz-second-", times=ATTEMPTS, **action)
    with pytest.raises(ModifyException) as info:
        compute().modify(modify_request(system.identifier))
    assert f'Deployment "zz-second-{system.identifier}"' in str(info.value)
    assert "no change was kept" in str(info.value)
    emu.clear_faults()
    assert templates(cluster, system.identifier) == before


def test_modify_that_cannot_be_reverted_says_so(cluster):
    emu = cluster.control
    system = two_deployments(cluster)
    before = templates(cluster, system.identifier)
    emu.faults(method="PATCH", path_regex=r"/deployments/zz-second-", every=True, status=500)
    with pytest.raises(ModifyException) as info:
        compute().modify(modify_request(system.identifier))
    assert "putting the system back failed too" in str(info.value)
    emu.clear_faults()
    assert templates(cluster, system.identifier) == before  # the first one was put back


def test_modify_list_that_keeps_failing(cluster):
    emu = cluster.control
    system, _ = start(cluster)
    emu.faults(method="GET", path_regex=r"/deployments$", every=True, status=503)
    with pytest.raises(ModifyException, match="cannot list deployments labelled tycho-guid=.*HTTP 503"):
        compute().modify(modify_request(system.identifier))


def test_delete_without_permission_on_secrets_leaves_them_to_the_garbage_collector(cluster):
    """A Role from before the token Secret (no deletecollection on secrets): delete still
    succeeds; the Secret is owned by the Deployment and goes with it."""
    emu = cluster.control
    system, _ = start(cluster)
    emu.faults(method="DELETE", path_regex=r"/secrets$", every=True, status=403, reason="Forbidden")
    assert compute().delete(system.identifier) == {}
    emu.clear_faults()
    assert cluster.objects(system.identifier) == []
