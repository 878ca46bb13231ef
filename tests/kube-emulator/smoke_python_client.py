"""Smoke test: the official `kubernetes` Python client (the one tycho-api
1.17.3 uses, 25.3.0) against the kube emulator, through a kubeconfig.

    python tests/kube-emulator/smoke_python_client.py      # standalone
    pytest tests/kube-emulator/smoke_python_client.py      # or under pytest

Skips (exit 0 with a message) when `kubernetes` is not installed.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from kube_emulator import Emulator  # noqa: E402

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover
    k8s = None

NS = "default"


def _deployment(name, labels):
    return k8s.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=1,
            selector=k8s.V1LabelSelector(match_labels={"app": name}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={"app": name, **labels}),
                spec=k8s.V1PodSpec(containers=[
                    k8s.V1Container(name="main", image="nginx:1",
                                    ports=[k8s.V1ContainerPort(container_port=80)]),
                    k8s.V1Container(name="sidecar", image="busybox"),
                ]),
            ),
        ),
    )


def _service(name, labels, owner=None, type_="ClusterIP"):
    meta = k8s.V1ObjectMeta(name=name, labels=labels)
    if owner is not None:
        meta.owner_references = [k8s.V1OwnerReference(
            api_version="apps/v1", kind="Deployment", name=owner.metadata.name, uid=owner.metadata.uid)]
    return k8s.V1Service(
        api_version="v1", kind="Service", metadata=meta,
        spec=k8s.V1ServiceSpec(type=type_, selector={"app": labels.get("app", name)},
                               ports=[k8s.V1ServicePort(port=80, target_port=80)]),
    )


def _expect_api_error(status, fn, *a, **k):
    try:
        fn(*a, **k)
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        return e
    raise AssertionError(f"expected HTTP {status}")


def run(emu):
    with tempfile.TemporaryDirectory() as d:
        kubeconfig = emu.write_kubeconfig(os.path.join(d, "config"), namespace=NS)
        api_client = k8s_config.new_client_from_config(config_file=kubeconfig)
    core = k8s.CoreV1Api(api_client)
    apps = k8s.AppsV1Api(api_client)
    net = k8s.NetworkingV1Api(api_client)

    # create deployment + service (+ the odd ones tycho creates)
    dep = apps.create_namespaced_deployment(NS, _deployment("jupyter-ds-1", {"tycho-guid": "g1", "executor": "tycho"}))
    assert dep.metadata.uid and dep.metadata.creation_timestamp is not None
    apps.create_namespaced_deployment(NS, _deployment("other-2", {"tycho-guid": "g2", "executor": "tycho"}))
    core.create_namespaced_service(NS, _service("jupyter-ds-1", {"tycho-guid": "g1", "app": "jupyter-ds-1"},
                                                owner=dep, type_="LoadBalancer"))
    core.create_namespaced_service(NS, _service("ambassador", {"app": "ambassador"}))
    core.create_namespaced_secret(NS, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="s1"),
                                                   string_data={"k": "v"}))
    core.create_namespaced_config_map(NS, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cm"), data={"a": "b"}))
    core.create_namespaced_persistent_volume_claim(NS, k8s.V1PersistentVolumeClaim(
        metadata=k8s.V1ObjectMeta(name="pvc1", labels={"tycho-guid": "g1"}),
        spec=k8s.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                             resources=k8s.V1ResourceRequirements(requests={"storage": "1Gi"}))))
    net.create_namespaced_network_policy(NS, k8s.V1NetworkPolicy(
        metadata=k8s.V1ObjectMeta(name="np1", labels={"tycho-guid": "g1"}),
        spec=k8s.V1NetworkPolicySpec(pod_selector=k8s.V1LabelSelector(match_labels={"tycho-guid": "g1"}))))

    # errors map to ApiException with Kubernetes statuses
    e = _expect_api_error(409, apps.create_namespaced_deployment, NS, _deployment("jupyter-ds-1", {}))
    assert '"AlreadyExists"' in e.body
    _expect_api_error(404, apps.read_namespaced_deployment, "nope", NS)
    _expect_api_error(404, apps.delete_namespaced_deployment, "nope", NS)

    # list with label_selector / field_selector
    got = apps.list_namespaced_deployment(NS, label_selector="tycho-guid=g1,executor=tycho")
    assert [i.metadata.name for i in got.items] == ["jupyter-ds-1"]
    got = apps.list_namespaced_deployment(NS, label_selector="tycho-guid in (g1,g2)")
    assert [i.metadata.name for i in got.items] == ["jupyter-ds-1", "other-2"]
    got = apps.list_namespaced_deployment(NS, label_selector="tycho-guid!=g1")
    assert [i.metadata.name for i in got.items] == ["other-2"]
    svc = core.list_namespaced_service(NS, field_selector="metadata.name=ambassador")
    assert [i.metadata.name for i in svc.items] == ["ambassador"]
    assert svc.items[0].spec.cluster_ip
    secrets = core.list_namespaced_secret(NS)
    assert [i.metadata.name for i in secrets.items] == ["s1"]
    assert secrets.items[0].data == {"k": "dg=="}  # stringData folded into data
    # tycho's status(): is_ready = status.ready_replicas == status.replicas
    st = apps.list_namespaced_deployment(NS, label_selector="tycho-guid=g1").items[0].status
    assert st.replicas == 1 and st.ready_replicas is None
    lb = core.read_namespaced_service("jupyter-ds-1", NS)
    assert lb.status.load_balancer.ingress is None
    assert lb.spec.ports[0].node_port

    # patch with a model object (the client sends strategic-merge-patch)
    emu.clear_requests()
    cur = apps.read_namespaced_deployment("jupyter-ds-1", NS)
    cur.metadata.labels["patched"] = "yes"
    cur.spec.template.spec.containers[0].image = "nginx:2"
    cur.spec.template.spec.containers = cur.spec.template.spec.containers[:1]  # SMP keeps the sidecar
    patched = apps.patch_namespaced_deployment("jupyter-ds-1", NS, cur)
    assert patched.metadata.labels["patched"] == "yes"
    cs = patched.spec.template.spec.containers
    assert [c.name for c in cs] == ["main", "sidecar"] and cs[0].image == "nginx:2", cs
    assert patched.metadata.generation == 2
    # and a dict patch
    patched = apps.patch_namespaced_deployment("jupyter-ds-1", NS, {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    # tycho's modify(): patch.yaml rendered to a dict (numeric quantities are
    # legal and stored as strings)
    patched = apps.patch_namespaced_deployment("jupyter-ds-1", NS, {"spec": {"template": {
        "metadata": {"labels": {"modified": "true"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:2",
                                 "resources": {"limits": {"cpu": 1, "memory": "2G"},
                                               "requests": {"cpu": 1, "memory": "2G"}}}]}}}})
    cs = patched.spec.template.spec.containers
    assert [c.name for c in cs] == ["main", "sidecar"], cs
    assert cs[0].resources.limits == {"cpu": "1", "memory": "2G"} and cs[0].ports[0].container_port == 80
    assert patched.spec.template.metadata.labels["modified"] == "true"
    assert patched.spec.template.metadata.labels["app"] == "jupyter-ds-1"
    reqs = emu.requests()
    assert [r["method"] for r in reqs] == ["GET", "PATCH", "PATCH", "PATCH"]
    assert reqs[1]["content_type"].startswith("application/strategic-merge-patch+json"), reqs

    # simulated readiness
    emu.set_deployment_status(NS, "jupyter-ds-1", ready_replicas=2, pods=True)
    st = apps.read_namespaced_deployment_status("jupyter-ds-1", NS).status
    assert st.ready_replicas == 2 and st.available_replicas == 2 and st.replicas == 2
    assert st.unavailable_replicas is None
    pods = core.list_namespaced_pod(NS, label_selector="app=jupyter-ds-1")
    assert len(pods.items) == 2 and all(p.status.phase == "Running" for p in pods.items)
    emu.set_loadbalancer_ip("192.0.2.7")
    assert core.read_namespaced_service("jupyter-ds-1", NS).status.load_balancer.ingress[0].ip == "192.0.2.7"

    # fault: one 500 on the next deployment list, then normal again
    emu.faults(method="GET", path_regex=r"/deployments$", status=500)
    _expect_api_error(500, apps.list_namespaced_deployment, NS)
    assert len(apps.list_namespaced_deployment(NS).items) == 2

    # delete_collection by label; the deployment's service, replicaset and
    # pods go with it (ownerReferences)
    status = apps.delete_collection_namespaced_deployment(NS, label_selector="tycho-guid=g1")
    assert status.status == "Success"
    assert [i.metadata.name for i in apps.list_namespaced_deployment(NS).items] == ["other-2"]
    assert [i.metadata.name for i in core.list_namespaced_service(NS).items] == ["ambassador"]
    assert core.list_namespaced_pod(NS).items == []
    st = apps.delete_namespaced_deployment("other-2", NS, body=k8s.V1DeleteOptions(propagation_policy="Foreground"))
    assert st.status == "Success"
    core.delete_collection_namespaced_persistent_volume_claim(NS, label_selector="tycho-guid=g1")
    net.delete_collection_namespaced_network_policy(NS, label_selector="tycho-guid=g1")

    kinds = sorted({o["kind"] for o in emu.objects()})
    assert kinds == ["ConfigMap", "Secret", "Service"], kinds
    return 1


def test_python_client_smoke():
    if k8s is None:
        import pytest
        pytest.skip("kubernetes python client not installed")
    with Emulator() as emu:
        run(emu)


if __name__ == "__main__":
    if k8s is None:
        print("SKIP: the kubernetes python client is not installed")
        sys.exit(0)
    with Emulator() as emu:
        run(emu)
    print("1 passed, 0 failed")
