"""Placement, GPUs and any username (docs/placement.md) on the kube
emulator over real HTTP, through ``TychoContext.start`` (a registry served from
127.0.0.1) and through the command line (``tycho --config ... up --registry DIR``):

* each placement source (configuration, registry context through ``extends`` and a
  mixin, registry app, compose ``deploy.placement.constraints``) and each precedence
  step lands in the Deployment's pod spec, which passes ``kubernetes-validate --strict``;
* GPUs in compose's device form and in the registry's form (``limits.gpus`` of the
  resource request, ``gpu_resource`` of the app or context), in several containers, each
  of which gets the pod its toleration;
* usernames that are no label values (an e-mail address, 100 characters) start, are
  listed by their real name, modified and deleted; a valid one is labelled as itself.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from api_server import Server, call
from api_server import start_request as api_start_request
from cluster import cluster_fixture  # noqa: F401 - the `cluster` fixture
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - pytest fixtures
from tycho import _native, actions
from tycho.config import Config
from tycho.context import Principal, TychoContext
from tycho.core import Tycho
from tycho.exceptions import ContextException, TychoException

ROOT = Path(__file__).resolve().parents[2]
EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
ANNOTATION = "tycho.renci.org/username"
EMAIL = "Jane.Doe@example.org"
LONG = "a" * 40 + ".very-long_user-name." + "z" * 39  # 100 characters, a valid label but for its length

REGISTRY = {
    "repositories": {"local": {"url": "apps"}},
    "contexts": {
        "gpus": {
            "placement": {"imagePullSecrets": [{"name": "regcred"}]},
            "gpu_resource": "nvidia.com/mig-1g.5gb",
            "apps": {},
        },
        "base": {
            "placement": {
                "nodeSelector": {"pool": "base", "zone": "a"},
                "priorityClassName": "low-priority",
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "science",
                                 "effect": "NoSchedule"}],
            },
            "apps": {
                "gpuapp": {
                    "name": "GPU app",
                    "services": {"gpuapp": 8888},
                    "placement": {"runtimeClassName": "nvidia", "nodeSelector": {"zone": "b"}},
                },
                "plain": {"name": "Plain", "services": {"plain": 80}},
            },
        },
        "catalogue": {
            "extends": ["base"],
            "mixin": ["gpus"],
            "placement": {"nodeSelector": {"pool": "catalogue"}},
            "apps": {},
        },
    },
}

GPUAPP = {
    "version": "3.0",
    "services": {
        "gpuapp": {
            "image": "nginx:1.27",
            "ports": ["8888"],
            "deploy": {
                "placement": {"constraints": ["node.labels.gpu == a100", "node.hostname != node-7"]},
                "resources": {
                    "limits": {"cpus": "1", "memory": "1G"},
                    "reservations": {"devices": [{"capabilities": ["gpu"], "count": 1, "driver": "nvidia"}]},
                },
            },
        },
        "worker": {
            "image": "busybox:1.36",
            "entrypoint": "sleep infinity",
            "deploy": {"resources": {"reservations": {"devices": [{"capabilities": ["gpu"], "count": 2}]}}},
        },
    },
}

PLAIN = {
    "version": "3.0",
    "services": {
        "plain": {"image": "nginx:1.27", "ports": ["80"]},
        "helper": {"image": "busybox:1.36", "entrypoint": "sleep infinity",
                   "deploy": {"resources": {"limits": {"gpus": 1}}}},
    },
}

# The registry's form of a GPU request: appstore's resource request.
GPU_REQUEST = {"deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G", "gpus": 1},
                                        "reservations": {"cpus": "1", "memory": "1G"}}}}


def write_registry(root: Path, registry=None) -> Path:
    reg = root / "registry"
    for app, spec in (("gpuapp", GPUAPP), ("plain", PLAIN)):
        (reg / "apps" / app).mkdir(parents=True)
        (reg / "apps" / app / "docker-compose.yaml").write_text(yaml.safe_dump(spec))
    (reg / "app-registry.yaml").write_text(yaml.safe_dump(registry or REGISTRY))
    (reg / "app-defaults.yaml").write_text("{}\n")
    return reg


def config_with_placement() -> dict:
    conf = yaml.safe_load((ROOT / "python" / "tycho" / "conf" / "tycho.yaml").read_text())
    conf["tycho"]["compute"]["placement"] = {
        "nodeSelector": {"tier": "apps", "gpu": "any"},
        "priorityClassName": "conf-priority",
        "imagePullSecrets": [{"name": "conf-cred"}],
    }
    return conf


@pytest.fixture
def served(tmp_path):
    """The registry directory, served over HTTP from 127.0.0.1: (directory, base URL)."""
    reg = write_registry(tmp_path)
    handler = functools.partial(_QuietHandler, directory=str(reg))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield reg, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def configured(monkeypatch, cluster):
    """The in-process executor (what TychoContext.start reaches without REST_API) with a
    configuration that has a placement of its own."""
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setattr(actions, "_tycho", Tycho(config=Config(config_with_placement())))
    return cluster


def deployment_of(cluster, guid):
    (deployment,) = cluster.of_kind(guid, "Deployment")
    return deployment


def assert_strictly_valid(obj):
    obj = {k: v for k, v in obj.items() if k != "status"}
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} invalid for {version}: {e.message} at {list(e.path)}")


def containers(spec):
    return {c["name"]: c for c in spec["containers"]}


def limits_of(container):
    """A container's limits with quantities as text (the API server answers them so)."""
    return {k: str(v) for k, v in ((container.get("resources") or {}).get("limits") or {}).items()}


def gpu_toleration(resource):
    return {"key": resource, "operator": "Exists", "effect": "NoSchedule"}


SCIENCE = {"key": "dedicated", "operator": "Equal", "value": "science", "effect": "NoSchedule"}
NOT_NODE_7 = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-7"]}]}]}}}


def start_through_context(base_url, product, app, username="jdoe", resources=None):
    context = TychoContext(product=product, tycho_config_url=base_url)
    context.http_session.max_age = 0.0
    return context, context.start(Principal(username, "tok-A"), app, resources, "h.example.org")


# ------------------------------------------------------------------ placement precedence


def test_catalogue_app_with_context_placement_and_gpu_profile(configured, served):
    _, base_url = served
    _, system = start_through_context(base_url, "catalogue", "gpuapp")
    configured.guids.append(system.identifier)
    deployment = deployment_of(configured, system.identifier)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {
        "tier": "apps",        # configuration
        "gpu": "a100",         # compose constraint over the configuration's "any"
        "pool": "catalogue",   # context over the context it extends
        "zone": "b",           # app over its context
    }
    assert spec["priorityClassName"] == "low-priority"          # context over configuration
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]     # mixin context's list replaces
    assert spec["runtimeClassName"] == "nvidia"                  # app
    assert spec["affinity"] == NOT_NODE_7                        # compose `!=`
    # One toleration for the GPU resource both GPU containers ask for (the mixin's
    # gpu_resource), then the context's.
    assert spec["tolerations"] == [gpu_toleration("nvidia.com/mig-1g.5gb"), SCIENCE]
    by_name = containers(spec)
    assert limits_of(by_name["gpuapp"])["nvidia.com/mig-1g.5gb"] == "1"
    assert limits_of(by_name["worker"]) == {"nvidia.com/mig-1g.5gb": "2"}
    assert_strictly_valid(deployment)


def test_each_source_alone_and_each_step(configured, served):
    _, base_url = served
    # The base context: no mixin, its own nodeSelector pool; the configuration's pull
    # secret (no context replaces it) and the app's zone over the context's.
    _, system = start_through_context(base_url, "base", "gpuapp")
    configured.guids.append(system.identifier)
    spec = deployment_of(configured, system.identifier)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"tier": "apps", "gpu": "a100", "pool": "base", "zone": "b"}
    assert spec["imagePullSecrets"] == [{"name": "conf-cred"}]
    assert spec["tolerations"][0] == gpu_toleration("nvidia.com/gpu")  # no gpu_resource in base
    # The plain app: no app placement, no compose constraint: configuration and context.
    _, plain = start_through_context(base_url, "base", "plain")
    configured.guids.append(plain.identifier)
    spec = deployment_of(configured, plain.identifier)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"tier": "apps", "gpu": "any", "pool": "base", "zone": "a"}
    assert spec["priorityClassName"] == "low-priority" and "runtimeClassName" not in spec
    assert "affinity" not in spec
    # The configuration alone (a registry without placement adds none).
    bare = copy.deepcopy(REGISTRY)
    for ctx in bare["contexts"].values():
        ctx.pop("placement", None)
        ctx.pop("gpu_resource", None)
        for app in ctx["apps"].values():
            app.pop("placement", None)
    reg = Path(served[0])
    (reg / "app-registry.yaml").write_text(yaml.safe_dump(bare))
    _, only_conf = start_through_context(base_url, "base", "plain")
    configured.guids.append(only_conf.identifier)
    spec = deployment_of(configured, only_conf.identifier)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"tier": "apps", "gpu": "any"}
    assert spec["priorityClassName"] == "conf-priority"
    assert spec["imagePullSecrets"] == [{"name": "conf-cred"}]
    assert_strictly_valid(deployment_of(configured, only_conf.identifier))


def test_no_placement_anywhere_adds_no_field(cluster, served, monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setattr(actions, "_tycho", None)
    reg, base_url = served
    bare = copy.deepcopy(REGISTRY)
    for ctx in bare["contexts"].values():
        ctx.pop("placement", None)
        for app in ctx["apps"].values():
            app.pop("placement", None)
    (reg / "app-registry.yaml").write_text(yaml.safe_dump(bare))
    (reg / "apps" / "plain" / "docker-compose.yaml").write_text(
        yaml.safe_dump({"version": "3.0", "services": {"plain": {"image": "nginx:1.27", "ports": ["80"]}}}))
    _, system = start_through_context(base_url, "base", "plain")
    cluster.guids.append(system.identifier)
    spec = deployment_of(cluster, system.identifier)["spec"]["template"]["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "runtimeClassName",
                  "imagePullSecrets"):
        assert field not in spec, field


def test_registry_form_gpus_in_several_containers(configured, served):
    _, base_url = served
    _, system = start_through_context(base_url, "catalogue", "plain", resources=GPU_REQUEST)
    configured.guids.append(system.identifier)
    deployment = deployment_of(configured, system.identifier)
    spec = deployment["spec"]["template"]["spec"]
    by_name = containers(spec)
    # The app's container from the request, the helper from its compose limits; both of
    # the context's (mixin's) GPU resource, so one toleration. The helper sorts first:
    # the original tolerated only a GPU in the first container.
    assert [c["name"] for c in spec["containers"]] == ["helper", "plain"]
    assert limits_of(by_name["plain"])["nvidia.com/mig-1g.5gb"] == "1"
    assert limits_of(by_name["helper"]) == {"nvidia.com/mig-1g.5gb": "1"}
    assert spec["tolerations"] == [gpu_toleration("nvidia.com/mig-1g.5gb"), SCIENCE]
    assert_strictly_valid(deployment)


def test_a_gpu_only_in_a_later_container_is_tolerated(configured, served):
    _, base_url = served
    # No GPU in the request: only the helper (not the first container by name) asks.
    reg = Path(served[0])
    spec_doc = copy.deepcopy(PLAIN)
    spec_doc["services"]["zz-gpu"] = spec_doc["services"].pop("helper")
    (reg / "apps" / "plain" / "docker-compose.yaml").write_text(yaml.safe_dump(spec_doc))
    _, system = start_through_context(base_url, "base", "plain")
    configured.guids.append(system.identifier)
    spec = deployment_of(configured, system.identifier)["spec"]["template"]["spec"]
    assert spec["containers"][0]["name"] == "plain" and "resources" not in spec["containers"][0]
    assert spec["tolerations"] == [gpu_toleration("nvidia.com/gpu"), SCIENCE]


def deployments(cluster):
    return sorted(o["metadata"]["name"] for o in cluster.backend.objects() if o.get("kind") == "Deployment")


def test_a_bad_placement_names_its_source(configured, served):
    reg, base_url = served
    before = deployments(configured)
    bad = copy.deepcopy(REGISTRY)
    bad["contexts"]["base"]["placement"]["tolerations"] = [{"key": "x", "effect": "Sometimes"}]
    (reg / "app-registry.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ContextException) as err:
        start_through_context(base_url, "catalogue", "gpuapp")
    assert "registry context base" in str(err.value) and "Sometimes" in str(err.value)
    assert deployments(configured) == before


# ------------------------------------------------------------------ the command line


def tycho(*args, timeout=120):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def test_the_command_line_lands_the_same_pod_spec(configured, served, tmp_path):
    reg, base_url = served
    conf = tmp_path / "tycho.yaml"
    conf.write_text(yaml.safe_dump(config_with_placement()))
    _, system = start_through_context(base_url, "catalogue", "gpuapp")
    configured.guids.append(system.identifier)
    from_context = deployment_of(configured, system.identifier)["spec"]["template"]["spec"]
    guid = "0123456789abcdef0123456789abcdef"
    configured.guids.append(guid)
    proc = tycho("--config", str(conf), "up", "--registry", str(reg), "--product", "catalogue", "--app", "gpuapp",
                 "--username", "jdoe", "--guid", guid, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    deployment = deployment_of(configured, guid)
    from_cli = deployment["spec"]["template"]["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "runtimeClassName",
                  "imagePullSecrets"):
        assert from_cli[field] == from_context[field], field
    assert {c["name"]: c.get("resources") for c in from_cli["containers"]} == \
        {c["name"]: c.get("resources") for c in from_context["containers"]}
    assert_strictly_valid(deployment)
    # Without --config: the built-in configuration has no placement.
    rendered = tycho("render", "--registry", str(reg), "--product", "catalogue", "--app", "gpuapp",
                     "--guid", guid, "-o", "json")
    assert rendered.returncode == 0, rendered.stderr
    (rendered_deployment,) = [o for o in json.loads(rendered.stdout)["items"] if o["kind"] == "Deployment"]
    pod = rendered_deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100", "pool": "catalogue", "zone": "b"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_the_command_line_strict_refuses_an_unconvertible_constraint(served, tmp_path):
    reg, _ = served
    spec_doc = copy.deepcopy(GPUAPP)
    spec_doc["services"]["gpuapp"]["deploy"]["placement"]["constraints"].append("node.role == manager")
    (reg / "apps" / "gpuapp" / "docker-compose.yaml").write_text(yaml.safe_dump(spec_doc))
    args = ("render", "--registry", str(reg), "--product", "catalogue", "--app", "gpuapp", "-o", "json")
    warned = tycho(*args)
    assert warned.returncode == 0, warned.stderr
    assert "node.role == manager" in warned.stderr and "not converted" in warned.stderr
    strict = tycho(*args, "--strict")
    assert strict.returncode == 1 and "node.role == manager" in strict.stderr and "strict" in strict.stderr
    bad_conf = tmp_path / "bad.yaml"
    conf = config_with_placement()
    conf["tycho"]["compute"]["placement"]["nodeName"] = "n1"
    bad_conf.write_text(yaml.safe_dump(conf))
    refused = tycho("--config", str(bad_conf), *args)
    assert refused.returncode == 1
    assert "tycho.compute.placement" in refused.stderr and "nodeName" in refused.stderr


# ------------------------------------------------------------------ the REST server


def test_the_rest_server_lands_the_request_placement_and_lists_by_real_name(cluster, tmp_path):
    conf = tmp_path / "tycho.yaml"
    conf.write_text(yaml.safe_dump(config_with_placement()))
    server = Server(tmp_path, cluster.kubeconfig, args=("--config", str(conf)),
                    env={"NAMESPACE": cluster.namespace}).wait_listening()
    try:
        request = api_start_request(username=EMAIL)
        # What a registry start carries: the top-level placement of its system.
        request["system"]["placement"] = {"nodeSelector": {"gpu": "t4"}, "runtimeClassName": "nvidia"}
        request["system"]["gpu_resource"] = "nvidia.com/mig-1g.5gb"
        request["system"]["services"]["nginx"]["deploy"] = {"resources": {"limits": {"gpus": 1}}}
        code, _, body = call("POST", server.url + "/system/start", request)
        assert code == 200, body
        guid = body["result"]["sid"]
        cluster.guids.append(guid)
        deployment = deployment_of(cluster, guid)
        spec = deployment["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"tier": "apps", "gpu": "t4"}
        assert spec["runtimeClassName"] == "nvidia" and spec["priorityClassName"] == "conf-priority"
        assert spec["tolerations"] == [gpu_toleration("nvidia.com/mig-1g.5gb")]
        assert_strictly_valid(deployment)
        code, _, body = call("POST", server.url + "/system/status", {"username": EMAIL})
        assert code == 200, body
        assert [(r["sid"], r["username"]) for r in body["result"]] == [(guid, EMAIL)]
        code, _, body = call("POST", server.url + "/system/delete", {"name": guid})
        assert code == 200, body
        assert cluster.objects(guid) == []
    finally:
        server.stop()


# ------------------------------------------------------------------ any username


@pytest.mark.parametrize("username", [EMAIL, LONG], ids=["e-mail", "100-characters"])
def test_any_username_starts_lists_modifies_and_deletes(cluster, served, monkeypatch, username):
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setattr(actions, "_tycho", None)
    _, base_url = served
    context, system = start_through_context(base_url, "base", "plain", username=username)
    cluster.guids.append(system.identifier)
    guid = system.identifier
    label = _native.username_label(username)
    assert label != username and len(label) <= 63
    deployment = deployment_of(cluster, guid)
    assert deployment["metadata"]["labels"]["username"] == label
    assert deployment["metadata"]["annotations"][ANNOTATION] == username
    assert deployment["spec"]["template"]["metadata"]["labels"]["username"] == label
    for service in cluster.of_kind(guid, "Service"):
        assert service["metadata"]["labels"]["username"] == label
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["USER"] == username and env["USER_NAME"] == username
    assert_strictly_valid(deployment)

    # Status by the real name: its system, the real name in the row.
    (row,) = context.status({"username": username}).services
    assert row.identifier == guid and row.username == username
    # Another user whose real name is spelled like the slug: same label, not listed.
    other_context, other = start_through_context(base_url, "base", "plain", username=label)
    cluster.guids.append(other.identifier)
    assert [s.identifier for s in context.status({"username": username}).services] == [guid]
    assert [s.identifier for s in other_context.status({"username": label}).services] == [other.identifier]
    everyone = {s.identifier: s.username for s in context.status({}).services}
    assert everyone[guid] == username and everyone[other.identifier] == label

    # Modify, then delete, by the GUID found through the real name.
    context.update({"tycho-guid": guid, "labels": {"team": "blue"}})
    assert deployment_of(cluster, guid)["spec"]["template"]["metadata"]["labels"]["team"] == "blue"
    context.delete({"name": guid})
    assert cluster.objects(guid) == []
    assert [s.identifier for s in context.status({"username": username}).services] == []


def test_any_username_through_the_command_line(cluster, served):
    reg, _ = served
    guid = "fedcba9876543210fedcba9876543210"
    cluster.guids.append(guid)
    up = tycho("up", "--registry", str(reg), "--product", "base", "--app", "plain", "--username", EMAIL,
               "--guid", guid, "-o", "json")
    assert up.returncode == 0, up.stderr
    status = tycho("status", "--username", EMAIL, "-o", "json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert [(r["sid"], r["username"]) for r in rows] == [(guid, EMAIL)]
    down = tycho("down", guid)
    assert down.returncode == 0, down.stderr
    assert cluster.objects(guid) == []


def test_a_valid_username_is_labelled_as_itself(cluster, served, monkeypatch):
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setattr(actions, "_tycho", None)
    _, base_url = served
    context, system = start_through_context(base_url, "base", "plain", username="Jane.Doe_1")
    cluster.guids.append(system.identifier)
    deployment = deployment_of(cluster, system.identifier)
    assert deployment["metadata"]["labels"]["username"] == "Jane.Doe_1"
    assert "annotations" not in deployment["metadata"]
    (row,) = context.status({"username": "Jane.Doe_1"}).services
    assert row.username == "Jane.Doe_1"


@pytest.mark.parametrize("username", ["a/b", "..", "a:b", "tab\there"])
def test_a_username_that_cannot_name_a_home_directory_is_refused(cluster, served, monkeypatch, username):
    monkeypatch.delenv("REST_API", raising=False)
    monkeypatch.setattr(actions, "_tycho", None)
    _, base_url = served
    before = deployments(cluster)
    with pytest.raises(TychoException) as err:
        start_through_context(base_url, "base", "plain", username=username)
    assert "username" in str(err.value)
    assert deployments(cluster) == before
