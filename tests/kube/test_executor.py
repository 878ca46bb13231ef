"""The Kubernetes executor (tycho._native.kube_*, src/exec/kube) over real HTTP.

Runs against the kube emulator (tests/kube-emulator, started once per session by the
``kube_emulator`` fixture of tests/support/kube_emulator.py). With ``TYCHO_TEST_KUBECONFIG`` set
the same tests run against that cluster instead (namespace ``TYCHO_TEST_NAMESPACE`` or
``default``; ``kubectl`` is used to create fixtures and read objects back); the parts
that need the emulator's control API (request log, load-balancer knob, deployment
status) skip with a reason.

The helpers (``Cluster``, ``start_request``, ``compute``, ``start``, the ``cluster``
fixture as ``cluster_fixture``) live in tests/support/cluster.py.
"""

import base64
import json
import time

import pytest
from cluster import cluster_fixture, compute, start, start_request  # noqa: F401 - the `cluster` fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho.client import TychoClient
from tycho.config import Config
from tycho.core import Tycho
from tycho.exceptions import ModifyException, StartException, TychoException


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


# ------------------------------------------------------------------ round trips


def test_round_trip_through_kubernetes_compute(cluster):
    system, result = start(cluster, clients=["10.0.0.0/8"])
    guid = system.identifier
    assert set(result) == {"name", "sid", "containers", "conn_string"}
    assert result["name"] == f"jupyter-ds-{guid}" and result["sid"] == guid
    assert list(result["containers"]) == ["jupyter-ds"]
    endpoint = result["containers"]["jupyter-ds"]
    assert set(endpoint) == {"ip_address", "port-1"}
    assert isinstance(endpoint["port-1"], int)  # the LoadBalancer's nodePort

    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["metadata"]["name"] == result["name"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"] == {"tycho-guid": guid, "username": "jdoe"}
    labels = deployment["metadata"]["labels"]
    assert labels["tycho-guid"] == guid and labels["executor"] == "tycho" and labels["username"] == "jdoe"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["original-app-name"] == "jupyter-ds" and pod_labels["app-name"] == "jupyter-ds"
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"jupyter-ds", "sidecar"}
    assert env_of(containers["jupyter-ds"])["FROM_COMPOSE"] == "compose-value"

    (service,) = cluster.of_kind(guid, "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    (owner,) = service["metadata"]["ownerReferences"]
    assert owner["kind"] == "Deployment" and owner["name"] == deployment["metadata"]["name"]
    assert owner["uid"] == deployment["metadata"]["uid"]
    assert service["spec"]["ports"][0]["name"] == "port-1"
    assert service["spec"]["ports"][0]["nodePort"] == endpoint["port-1"]

    (policy,) = cluster.of_kind(guid, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {"tycho-guid": guid}
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]

    # The principal's access token: a Secret owned by the Deployment, read by reference.
    (secret,) = cluster.of_kind(guid, "Secret")
    assert secret["metadata"]["name"] == f"jupyter-ds-{guid}-tokens"
    assert base64.b64decode(secret["data"]["access_token"]) == b"secret-token-A"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    for container in containers.values():
        (token,) = [e for e in container["env"] if e["name"] == "ACCESS_TOKEN"]
        assert token == {"name": "ACCESS_TOKEN",
                         "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "access_token"}}}
    assert "secret-token-A" not in json.dumps(deployment)
    secret_version = secret["metadata"]["resourceVersion"]

    c = compute()
    (row,) = c.status(guid)
    assert set(row) == {"name", "app_id", "sid", "ip_address", "port", "creation_time", "username",
                        "utilization", "workspace_name", "is_ready"}
    assert row["name"] == result["name"] and row["sid"] == guid and row["app_id"] == "jupyter-ds"
    assert row["username"] == "jdoe" and row["workspace_name"] == "jupyter-ds"
    assert row["port"] == "8888"
    # A real API server canonicalises 0.5 to 500m; the emulator keeps what was sent.
    assert row["utilization"]["jupyter-ds"] in ({"cpu": "500m", "memory": "1G"}, {"cpu": "0.5", "memory": "1G"})
    assert row["utilization"]["sidecar"] is None
    month, day, rest = row["creation_time"].split("-", 2)
    year, clock = rest.split(" ")
    assert int(month) in range(1, 13) and int(day) in range(1, 32) and int(year) >= 2024
    assert all(not part.startswith("0") or part == "0" for part in [month, day, *clock.split(":")])
    assert row["is_ready"] is False  # nothing is running yet
    assert guid in [r["sid"] for r in c.status(username="jdoe")]
    assert guid in [r["sid"] for r in c.status()]
    assert c.status(username="someone-else") == []

    modified = c.modify(Tycho().parse_modify({"tycho-guid": guid, "labels": {"tier": "gold"}, "cpu": "2",
                                              "memory": "2G"}))
    (patch,) = modified["patches"]
    assert patch["spec"]["template"]["metadata"]["labels"] == {"tier": "gold"}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["tier"] == "gold"
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["resources"]["limits"]["cpu"] == "2"
        assert container["resources"]["requests"]["memory"] == "2G"
    assert deployment["spec"]["selector"]["matchLabels"] == {"tycho-guid": guid, "username": "jdoe"}
    # status and modify leave the token Secret alone
    (secret,) = cluster.of_kind(guid, "Secret")
    assert secret["metadata"]["resourceVersion"] == secret_version

    assert c.delete(guid) == {}
    assert cluster.objects(guid) == []
    assert c.status(guid) == []


def test_round_trip_through_the_in_process_client(cluster):
    client = TychoClient()
    request = start_request(username="alice")
    system = client.start(request)
    cluster.guids.append(system.identifier)
    assert system.name == f"jupyter-ds-{system.identifier}"
    assert [s.name for s in system.services] == ["jupyter-ds"] and isinstance(system.services[0].port, int)

    status = client.status({"name": system.identifier})
    assert status.status == "success"
    (service,) = status.services
    assert service.identifier == system.identifier and service.username == "alice"
    assert service.total_util["cpu"] == 500 and service.total_util["memory"] == "1.0"
    assert [s.identifier for s in client.status({"username": "alice"}).services] == [system.identifier]

    response = client.modify({"tycho-guid": system.identifier, "labels": {"x": "y"}})
    assert response["status"] == "success" and len(response["result"]["patches"]) == 1

    response = client.delete({"name": system.identifier})
    assert response == {"status": "success", "result": {}, "message": f"Deleted system {system.identifier}"}
    assert cluster.objects(system.identifier) == []
    assert client.status({"name": system.identifier}).services == []


# ------------------------------------------------------------------ what start reads


def test_ambassador_service_switches_to_mappings(cluster):
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ambassador"},
                    "spec": {"type": "ClusterIP", "ports": [{"port": 80}], "selector": {"app": "ambassador"}}})
    system, result = start(cluster)
    endpoint = result["containers"]["jupyter-ds"]
    assert endpoint == {"ip_address": None, "port-1": None}  # ClusterIP: no node port, no address
    (service,) = cluster.of_kind(system.identifier, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    mapping = service["metadata"]["annotations"]["getambassador.io/config"]
    assert f"prefix: \"/private/jupyter-ds/jdoe/{system.identifier}/" in mapping
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "jupyter-ds"]
    assert env_of(app)["NB_PREFIX"] == f"/private/jupyter-ds/jdoe/{system.identifier}"


def test_ambassador_service_name_from_environment(cluster, monkeypatch):
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "edge-gateway"},
                    "spec": {"type": "ClusterIP", "ports": [{"port": 80}], "selector": {"app": "gw"}}})
    system, _ = start(cluster)
    (service,) = cluster.of_kind(system.identifier, "Service")
    assert service["spec"]["type"] == "LoadBalancer"  # "ambassador" does not exist
    monkeypatch.setenv("AMBASSADOR_SVC_NAME", "edge-gateway")
    system, _ = start(cluster)
    (service,) = cluster.of_kind(system.identifier, "Service")
    assert service["spec"]["type"] == "ClusterIP"


def test_app_env_secret_is_appended_to_every_container(cluster):
    def b64(s):
        return base64.b64encode(s.encode()).decode()

    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jupyter-ds-env"},
                    "data": {"API_KEY": b64("k-123"), "DERIVED": b64("from {{ FROM_COMPOSE }}")}})
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other-app-env"},
                    "data": {"NOT_MINE": b64("x")}})
    system, _ = start(cluster)
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        env = env_of(container)
        assert env["API_KEY"] == "k-123", container["name"]
        assert "NOT_MINE" not in env
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "jupyter-ds"]
    assert env_of(app)["DERIVED"] == "from compose-value"  # rendered with the container's env


def test_missing_claims_are_dropped(cluster):
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "present-data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    system, _ = start(cluster, volumes=["pvc://present-data:/data", "pvc://absent-data/sub:/more"])
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    assert "present-data" in claims and "absent-data" not in claims
    (app,) = [c for c in pod["containers"] if c["name"] == "jupyter-ds"]
    mounts = {m["mountPath"] for m in app.get("volumeMounts", [])}
    assert "/data" in mounts and "/more" not in mounts


def test_ip_address_comes_from_the_load_balancer(cluster):
    emu = cluster.control
    system, result = start(cluster)
    assert result["containers"]["jupyter-ds"]["ip_address"] is None
    (row,) = compute().status(system.identifier)
    assert row["ip_address"] is None and row["port"] == "8888"

    emu.set_loadbalancer_ip("203.0.113.7")
    (row,) = compute().status(system.identifier)
    assert row["ip_address"] == "203.0.113.7"
    system, result = start(cluster)
    assert result["containers"]["jupyter-ds"]["ip_address"] == "203.0.113.7"


def test_status_is_ready_follows_the_deployment(cluster):
    emu = cluster.control
    system, _ = start(cluster)
    (row,) = compute().status(system.identifier)
    assert row["is_ready"] is False
    emu.set_deployment_status(cluster.namespace, system.name)
    (row,) = compute().status(system.identifier)
    assert row["is_ready"] is True


def test_status_tolerates_missing_labels_and_limits(cluster):
    cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hand-made", "labels": {"executor": "tycho"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hand-made"}},
                 "template": {"metadata": {"labels": {"app": "hand-made"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    })
    system, _ = start(cluster)
    rows = {r["name"]: r for r in compute().status()}
    assert system.name in rows
    row = rows["hand-made"]
    assert row["sid"] is None and row["app_id"] is None and row["username"] is None
    assert row["utilization"] == {"c": None} and row["workspace_name"] == ""
    assert row["ip_address"] is None and row["port"] is None
    assert isinstance(row["creation_time"], str)


def test_status_with_a_value_that_is_no_label_matches_nothing(cluster):
    assert compute().status(username="jdoe@example.org") == []
    assert compute().status("not a guid") == []


# ------------------------------------------------------------------ delete and modify


def test_delete_is_idempotent_and_removes_network_policies(cluster):
    system, _ = start(cluster, clients=["192.168.0.0/16"])
    assert {o["kind"] for o in cluster.objects(system.identifier)} == {"Deployment", "Service", "NetworkPolicy",
                                                                      "Secret"}
    c = compute()
    assert c.delete(system.identifier) == {}
    assert cluster.objects(system.identifier) == []
    assert c.delete(system.identifier) == {}
    assert c.delete("0123456789abcdef0123456789abcdef") == {}


def test_delete_leaves_other_systems_alone(cluster):
    first, _ = start(cluster)
    second, _ = start(cluster, username="bob")
    compute().delete(first.identifier)
    assert cluster.objects(first.identifier) == []
    assert {o["kind"] for o in cluster.objects(second.identifier)} == {"Deployment", "Service", "Secret"}


def test_modify_unknown_guid(cluster):
    modify = Tycho().parse_modify({"tycho-guid": "0123456789abcdef0123456789abcdef", "labels": {"a": "b"}})
    with pytest.raises(ModifyException, match="no system with GUID 0123456789abcdef0123456789abcdef"):
        compute().modify(modify)


@pytest.mark.parametrize("request_body, named", [
    ({"cpu": "lots"}, "lots"),
    ({"memory": "1 G"}, "1 G"),
    ({"labels": {"ok": "a b"}}, "a b"),
    ({"labels": {"bad key!": "v"}}, "bad key!"),
])
def test_modify_checks_values_before_sending_anything(cluster, request_body, named):
    system, _ = start(cluster)
    (before,) = cluster.of_kind(system.identifier, "Deployment")
    modify = Tycho().parse_modify({"tycho-guid": system.identifier, **request_body})
    with pytest.raises(ModifyException) as info:
        compute().modify(modify)
    assert named in str(info.value)
    (after,) = cluster.of_kind(system.identifier, "Deployment")
    assert after["spec"] == before["spec"]


def test_modify_refuses_the_labels_tycho_selects_by(cluster):
    """Issue 9: tycho-guid, username, executor and name select the system's objects."""
    system, _ = start(cluster)
    emu = cluster.control
    emu.clear_requests()
    for label in ("tycho-guid", "username", "executor", "name"):
        request = Tycho().parse_modify({"tycho-guid": system.identifier, "labels": {"tier": "gold", label: "x"}})
        with pytest.raises(ModifyException) as info:
            compute().modify(request)
        assert f'label "{label}" is reserved' in str(info.value), str(info.value)
    assert [r for r in emu.requests() if r["method"] == "PATCH"] == []
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    assert "tier" not in deployment["spec"]["template"]["metadata"]["labels"]
    # Other labels, app-name (appstore renames workspaces with it) included, still apply.
    compute().modify(Tycho().parse_modify({"tycho-guid": system.identifier, "labels": {"app-name": "renamed"}}))
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["app-name"] == "renamed"


def test_modify_without_changes_patches_nothing(cluster):
    system, _ = start(cluster)
    modify = Tycho().parse_modify({"tycho-guid": system.identifier})
    assert compute().modify(modify) == {"patches": [{}]}


# ------------------------------------------------------------------ round trips on the wire


def test_start_reads_by_name_in_four_stages(cluster):
    emu = cluster.control
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "present-data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    compute().status("warm-up")  # the client exists before we count
    emu.clear_requests()
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"],
                                         volumes=["pvc://present-data:/data", "pvc://absent-data:/more"]))
    cluster.guids.append(system.identifier)
    compute().start(system)
    requests = [(r["method"], r["path"]) for r in emu.requests()]
    ns = cluster.namespace
    reads = {
        ("GET", f"/api/v1/namespaces/{ns}/services/ambassador"),
        ("GET", f"/api/v1/namespaces/{ns}/secrets/jupyter-ds-env"),
        ("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/present-data"),
        ("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/absent-data"),
    }
    creates_last = {  # stage 3: the token Secret is created with the Services
        ("POST", f"/api/v1/namespaces/{ns}/services"),
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"),
        ("POST", f"/api/v1/namespaces/{ns}/secrets"),
    }
    assert set(requests[:4]) == reads, requests
    assert requests[4] == ("POST", f"/apis/apps/v1/namespaces/{ns}/deployments")
    assert set(requests[5:8]) == creates_last, requests
    # The Deployment read back (issue 9: a delete that ran meanwhile wins).
    assert requests[8:] == [("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{system.name}")], requests
    # No namespace-wide lists of secrets or claims.
    assert not any(m == "GET" and p.endswith(("/secrets", "/persistentvolumeclaims", "/services"))
                   for m, p in requests)


def test_start_takes_four_round_trips_of_latency(cluster):
    emu = cluster.control
    compute().status("warm-up")
    # A long latency, so that the machine's own (busy) time is small next to it: the
    # bound below separates three sequential round trips from four with 1.35 s to spare.
    latency = 1.5
    emu.latency(int(latency * 1000))
    try:
        started = time.monotonic()
        system, _ = start(cluster, clients=["10.0.0.0/8"])
        elapsed = time.monotonic() - started
    finally:
        emu.latency(0)
    # reads | Deployment | Service + NetworkPolicy | Deployment read back: four stages,
    # never five, no sleeping.
    assert 4 * latency <= elapsed < 4.9 * latency, elapsed


def test_start_failure_leaves_nothing_and_names_the_object(cluster):
    emu = cluster.control
    emu.faults(method="POST", path_regex="/services$", every=True, status=422, reason="Invalid",
               message="Service \"x\" is invalid: spec.ports: Required value")
    system = Tycho().parse(start_request(clients=["10.0.0.0/8"]))
    cluster.guids.append(system.identifier)
    with pytest.raises(StartException) as info:
        compute().start(system)
    message = str(info.value)
    assert f'Service "jupyter-ds-{system.identifier}"' in message
    assert "Invalid" in message and "spec.ports: Required value" in message
    assert "removed" in message
    emu.clear_faults()
    assert cluster.objects(system.identifier) == []


def test_second_start_of_a_running_system_fails_and_keeps_it(cluster):
    system, _ = start(cluster)
    before = sorted((o["kind"], o["metadata"]["uid"]) for o in cluster.objects(system.identifier))
    with pytest.raises(StartException, match="AlreadyExists"):
        compute().start(system)
    after = sorted((o["kind"], o["metadata"]["uid"]) for o in cluster.objects(system.identifier))
    assert after == before


def test_no_configuration_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TychoException, match="no usable Kubernetes configuration"):
        compute().status()


def test_tokens_are_never_logged(cluster, caplog):
    caplog.set_level("DEBUG")
    emu = cluster.control
    emu.faults(method="POST", path_regex="/deployments$", status=500)
    start(cluster)
    text = caplog.text
    assert "tycho.kube" in text  # the executor logs through Python logging
    assert "secret-token-A" not in text and "kube-emulator-token" not in text


def test_a_system_built_with_the_constructor_starts(cluster):
    from tycho.model import System

    guid = "0123456789abcdef0123456789abcde0"
    cluster.guids.append(guid)
    system = System(Config(), "web", {"username": "jdoe"}, "default", "", {"enabled": False, "target": None},
                    [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                      "limits": {"cpus": "1", "memory": "1G"}}],
                    guid, False, services={"web": {"port": 80}})
    result = compute().start(system)
    assert result["name"] == f"web-{guid}" and set(result["containers"]) == {"web"}
    (deployment,) = cluster.of_kind(guid, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx:1.27" and container["resources"]["limits"]["memory"] == "1G"


def test_namespace_rules(cluster, monkeypatch, tmp_path):
    emu = cluster.control  # other namespaces exist only on the emulator for sure

    def namespaces_of(guid):
        return {o["metadata"]["namespace"] for o in emu.objects()
                if (o["metadata"].get("labels") or {}).get("tycho-guid") == guid}

    # No NAMESPACE: the kubeconfig context's namespace.
    monkeypatch.delenv("NAMESPACE")
    monkeypatch.setenv("KUBECONFIG", emu.write_kubeconfig(tmp_path / "team-a", namespace="team-a"))
    c = compute()
    assert c.namespace == "team-a"
    system = Tycho().parse(start_request())
    c.start(system)
    assert namespaces_of(system.identifier) == {"team-a"}
    assert [r["sid"] for r in c.status(system.identifier)] == [system.identifier]
    # NAMESPACE wins over the kubeconfig.
    monkeypatch.setenv("NAMESPACE", "team-b")
    assert compute().namespace == "team-b" and compute().status(system.identifier) == []
    # An explicit namespace wins over everything.
    c = compute()
    c.namespace = "team-a"
    assert c.namespace == "team-a"
    assert c.delete(system.identifier) == {}
    assert namespaces_of(system.identifier) == set()
    with pytest.raises(StartException, match="namespace"):
        bad = compute()
        bad.namespace = "Not_A_Namespace"
        bad.start(Tycho().parse(start_request()))


def test_client_factory_finds_the_api_service(cluster):
    """TychoClientFactory.get_client reads the API's Service (the original's lookup): its
    name and first port; a missing Service gives the default URL."""
    from tycho.client import TychoClientFactory

    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tycho-api"},
                    "spec": {"ports": [{"port": 8099}, {"port": 9000}]}})
    factory = TychoClientFactory()
    assert factory.get_client(namespace=cluster.namespace).url == "http://tycho-api:8099/system"
    missing = factory.get_client(name="no-such-api", namespace=cluster.namespace, default_url="http://d:1")
    assert missing.url == "http://d:1/system"
    bad = factory.get_client(name="Not_A_Name", namespace=cluster.namespace, default_url="http://d:2")
    assert bad.url == "http://d:2/system"
