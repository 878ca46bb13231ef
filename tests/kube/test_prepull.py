"""`tycho prepull --registry URL|DIR --product P [--apply]`: the DaemonSet that pulls every
image of a product's apps on every node (src/compile/prepull.rs, src/cli/prepull.rs,
src/exec/kube/apply.rs).

The output passes strict validation for tests/registry-small and for every product of
HeLx's catalogue (when it is found: TYCHO_HELX_CORPUS, else ../shared/corpus/helx-apps),
and its images are the ones `TychoContext.start` renders for each app: the requests
TychoContext builds (served the same registry over HTTP) compiled by the core.
`--apply` runs against the kube emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from unittest import mock

import kubernetes_validate
import pytest
import yaml
from corpus import helx_corpus
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401
from static_site import serve
from tycho import _native
from tycho.client import TychoSystem
from tycho.context import Principal, TychoContext

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "registry-small"
EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")
CORPUS = helx_corpus() if (helx_corpus() / "app-registry.yaml").is_file() else None
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def tycho(*args, env=None, timeout=120):
    full = dict(os.environ, **(env or {}))
    full.pop("TYCHO_ACCESS_TOKEN", None)
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=full)


def prepull(registry, product, *extra, env=None):
    proc = tycho("prepull", "--registry", str(registry), "--product", product, "-o", "json", *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def validate(obj):
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def pulled_images(daemon_set):
    return [c["image"] for c in daemon_set["spec"]["template"]["spec"]["initContainers"]]


def start_images(base_url, product):
    """{app: the images of the pod TychoContext.start would create for it} for every app
    of `product` of the registry served at `base_url` (the executor's call replaced by
    the core's compiler)."""
    context = TychoContext(product=product, tycho_config_url=base_url)
    captured = []

    def fake_start(request):
        captured.append(request)
        return TychoSystem(status="success", message="", result={
            "name": f"{request['name']}-g", "sid": "g", "conn_string": "",
            "containers": {k: {"ip_address": None, "port-1": int(v["port"])} for k, v in request["services"].items()}})

    images = {}
    with mock.patch.object(TychoContext, "_start", side_effect=fake_start):
        for app in context.apps:
            context.start(Principal("jdoe", None, None), app, None, None)
            objects = _native.compile_request(captured[-1], identifier="0" * 32)
            [dep] = [o for o in objects if o["kind"] == "Deployment"]
            pod = dep["spec"]["template"]["spec"]
            images[app] = [c["image"] for c in pod.get("initContainers", []) + pod["containers"]]
    return images


def check_against_start(daemon_set, registry_dir, product):
    with serve(registry_dir) as base:
        expected = start_images(base, product)
    wanted = []
    for app in sorted(expected):
        for image in expected[app]:
            if image not in wanted:
                wanted.append(image)
    assert pulled_images(daemon_set) == wanted
    assert daemon_set["metadata"]["annotations"]["tycho/prepull-apps"] == ",".join(sorted(expected))


# ------------------------------------------------------------------ the object


def test_small_registry_object_validates_and_pulls_what_start_renders():
    ds = prepull(SMALL, "shop")
    validate(ds)
    assert ds["kind"] == "DaemonSet" and ds["apiVersion"] == "apps/v1"
    assert ds["metadata"]["name"] == "tycho-prepull-shop"
    assert ds["metadata"]["labels"]["executor"] == "tycho"
    assert "namespace" not in ds["metadata"]
    pod = ds["spec"]["template"]["spec"]
    # the pods do not carry executor=tycho: the executor's status and cache select on it
    assert "executor" not in ds["spec"]["template"]["metadata"]["labels"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    # {{ app_registry }} and {{ hub }} rendered from the registry's settings
    assert "registry.example.org/tests/hello:1.0" in pulled_images(ds)
    assert "docker.io/library/nginx:1.27" in pulled_images(ds)
    for c in pod["initContainers"]:
        assert c["command"] == ["/bin/sh", "-c", "exit 0"]
        assert c["resources"]["limits"]["memory"] == "64Mi"
    [pause] = pod["containers"]
    assert pause["image"] == "registry.k8s.io/pause:3.10"
    assert pod["securityContext"]["runAsNonRoot"] is True
    check_against_start(ds, SMALL, "shop")


def test_default_output_is_yaml_and_options_apply():
    proc = tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--namespace", "team-a",
                 "--pause-image", "example.org/pause:1")
    assert proc.returncode == 0, proc.stderr
    ds = yaml.safe_load(proc.stdout)
    validate(ds)
    assert ds["metadata"]["namespace"] == "team-a"
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/pause:1"
    assert ds == prepull(SMALL, "shop", "--namespace", "team-a", "--pause-image", "example.org/pause:1")


def test_registry_over_http_gives_the_same_object():
    with serve(SMALL) as base:
        assert prepull(base, "shop") == prepull(SMALL, "shop")


def test_configured_placement_reaches_the_daemon_set(tmp_path):
    config = yaml.safe_load(_native.DEFAULT_CONFIG)
    config["tycho"]["compute"]["placement"] = {
        "nodeSelector": {"pool": "users"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "users", "effect": "NoSchedule"}],
        "imagePullSecrets": [{"name": "regcred"}],
    }
    path = tmp_path / "tycho.yaml"
    path.write_text(yaml.safe_dump(config))
    ds = prepull(SMALL, "shop", "--config", str(path))
    validate(ds)
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "users"}
    assert {"key": "dedicated", "operator": "Equal", "value": "users", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def _corpus_products():
    if not CORPUS:
        return []
    registry = yaml.safe_load((CORPUS / "app-registry.yaml").read_text())
    return sorted(registry.get("contexts") or {})


@pytest.mark.skipif(not CORPUS, reason=f"HeLx's app catalogue is not at {helx_corpus()} (set TYCHO_HELX_CORPUS)")
@pytest.mark.parametrize("product", _corpus_products() or ["none"])
def test_every_corpus_product_validates_and_pulls_what_start_renders(product):
    with serve(CORPUS) as base:
        apps = TychoContext(product=product, tycho_config_url=base).apps
    if not apps:
        proc = tycho("prepull", "--registry", str(CORPUS), "--product", product)
        assert proc.returncode == 1
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("tycho: error: ") and "no apps" in line
        return
    ds = prepull(CORPUS, product)
    validate(ds)
    assert all(image and "{{" not in image for image in pulled_images(ds))
    check_against_start(ds, CORPUS, product)


# ------------------------------------------------------------------ refusals


def one_error_line(proc):
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("tycho: error: ")
    return line


def test_bad_registry_unknown_product_and_docker_backplane():
    line = one_error_line(tycho("prepull", "--registry", "/no/such/dir", "--product", "shop"))
    assert "/no/such/dir" in line
    line = one_error_line(tycho("prepull", "--registry", str(SMALL), "--product", "nope"))
    assert "nope" in line
    for name in ("docker", "docker-compose"):
        line = one_error_line(tycho("prepull", "--registry", str(SMALL), "--product", "shop", "-b", name, "--apply"))
        assert "Kubernetes-only" in line
    line = one_error_line(tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--pause-image", "a b"))
    assert "--pause-image" in line
    # usage: the registry and the product are required
    assert tycho("prepull", "--product", "shop").returncode == 2
    assert tycho("prepull", "--registry", str(SMALL)).returncode == 2


def test_broken_spec_names_the_app(tmp_path):
    reg = tmp_path / "reg"
    shutil.copytree(SMALL, reg)
    (reg / "app-specs" / "board" / "docker-compose.yaml").unlink()
    line = one_error_line(tycho("prepull", "--registry", str(reg), "--product", "shop"))
    assert "board" in line


# ------------------------------------------------------------------ --apply


def daemon_sets(emulator):
    return [o for o in emulator.objects() if o["kind"] == "DaemonSet"]


def test_apply_creates_then_is_idempotent_then_updates(kube_emulator, tmp_path):  # noqa: F811
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    env = {"KUBECONFIG": str(kubeconfig)}
    proc = tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--apply", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "daemonset.apps/tycho-prepull-shop created\n"
    [created] = daemon_sets(kube_emulator)
    assert created["metadata"]["namespace"] == "default"
    assert created["metadata"]["labels"]["executor"] == "tycho"
    assert pulled_images(created) == pulled_images(prepull(SMALL, "shop"))

    # again: nothing written, the same object
    kube_emulator.clear_requests()
    proc = tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--apply", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "daemonset.apps/tycho-prepull-shop unchanged\n"
    [again] = daemon_sets(kube_emulator)
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert again["spec"] == created["spec"]
    assert [r["method"] for r in kube_emulator.requests() if "daemonsets" in r["path"]] == ["GET"]

    # the registry changes (a new image): the same DaemonSet is updated
    reg = tmp_path / "reg"
    shutil.copytree(SMALL, reg)
    spec = reg / "app-specs" / "hello" / "docker-compose.yaml"
    spec.write_text(spec.read_text().replace("hello:1.0", "hello:2.0"))
    proc = tycho("prepull", "--registry", str(reg), "--product", "shop", "--apply", "-o", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)
    [updated] = daemon_sets(kube_emulator)
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert "registry.example.org/tests/hello:2.0" in pulled_images(updated)
    assert "registry.example.org/tests/hello:1.0" not in pulled_images(updated)
    assert stored["spec"] == updated["spec"]
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]


def test_apply_drops_what_is_no_longer_sent_and_keeps_other_labels(kube_emulator, tmp_path):  # noqa: F811
    env = {"KUBECONFIG": str(kube_emulator.write_kubeconfig(tmp_path / "kubeconfig"))}
    config = yaml.safe_load(_native.DEFAULT_CONFIG)
    config["tycho"]["compute"]["placement"] = {"nodeSelector": {"pool": "users"}}
    path = tmp_path / "tycho.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = tycho("--config", str(path), "prepull", "--registry", str(SMALL), "--product", "shop", "--apply", env=env)
    assert proc.returncode == 0, proc.stderr
    [ds] = daemon_sets(kube_emulator)
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "users"}
    # another writer labels it (a merge patch, as kubectl label sends)
    url = f"{kube_emulator.url.rstrip('/')}/apis/apps/v1/namespaces/default/daemonsets/tycho-prepull-shop"
    request = urllib.request.Request(url, method="PATCH", data=json.dumps({"metadata": {"labels": {"team": "x"}}}).encode(),
                                     headers={"Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    # the placement is gone from the configuration: gone from the DaemonSet too
    proc = tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--apply", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(" configured\n")
    [ds] = daemon_sets(kube_emulator)
    assert "nodeSelector" not in ds["spec"]["template"]["spec"]
    assert ds["metadata"]["labels"]["team"] == "x" and ds["metadata"]["labels"]["executor"] == "tycho"
    # an edit of a field tycho sets is put back
    request = urllib.request.Request(url, method="PATCH", data=json.dumps(
        {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 1}}}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(request, timeout=10):
        pass
    proc = tycho("prepull", "--registry", str(SMALL), "--product", "shop", "--apply", env=env)
    assert proc.stdout.endswith(" configured\n"), proc.stderr
    [ds] = daemon_sets(kube_emulator)
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "100%"


def test_apply_in_a_namespace_and_an_unreachable_cluster(kube_emulator, tmp_path):  # noqa: F811
    kubeconfig = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    proc = tycho("--namespace", "team-a", "prepull", "--registry", str(SMALL), "--product", "base", "--apply",
                 env={"KUBECONFIG": str(kubeconfig)})
    assert proc.returncode == 0, proc.stderr
    [ds] = daemon_sets(kube_emulator)
    assert ds["metadata"]["namespace"] == "team-a" and ds["metadata"]["name"] == "tycho-prepull-base"
    # nothing listens: one line, exit 1
    dead = tmp_path / "dead"
    dead.write_text(Path(kubeconfig).read_text().replace(kube_emulator.url.rstrip("/"), "http://127.0.0.1:9"))
    line = one_error_line(tycho("prepull", "--registry", str(SMALL), "--product", "base", "--apply",
                                env={"KUBECONFIG": str(dead)}))
    assert "127.0.0.1:9" in line


def test_role_grants_only_what_apply_uses():
    role = yaml.safe_load((ROOT / "deploy" / "role.yaml").read_text())
    rules = [r for r in role["rules"] if "daemonsets" in r["resources"]]
    assert rules == [{"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "create", "update"]}]
