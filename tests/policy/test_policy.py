"""The policy layer (src/compile/policy): the Pod Security Standards level (`tycho.policy.pod_security`,
default baseline) and the resource ceilings (`tycho.policy.max`), checked on the compiled
pod before anything is created, on both backplanes and every face (Python, CLI, REST).

Offending specs, one per rule of the standard: compose where compose can say it
(`cap_add`), else a user pod template (`tycho.templates.paths`) that sets the field."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from api_server import Server, call
from cluster import cluster_fixture  # noqa: F401 - fixture
from corpus import helx_corpus
from docker_engine import Engine
from static_site import serve
from tycho.client import TychoClient
from tycho.config import Config
from tycho.core import Tycho
from tycho.dockerc import DockerComposeCompute
from tycho.exceptions import StartException
from tycho.kube import KubernetesCompute

ROOT = Path(__file__).resolve().parents[2]
CORPUS = helx_corpus()


def request(service=None, name="web"):
    spec = {"image": "nginx:1.27", "ports": ["80"]}
    spec.update(service or {})
    return {
        "name": name,
        "principal": json.dumps({"username": "jdoe"}),
        "serviceaccount": "default",
        "env": {},
        "system": {"version": "3", "services": {name: spec}},
        "services": {name: {"port": "80", "clients": []}},
    }


# A user's pod template: tycho's shape, plus the offending field of each case.
POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ system.name }}
  labels:
    tycho-guid: {{ system.identifier }}
    executor: tycho
    username: {{ system.username }}
  annotations: @ANNOTATIONS@
spec:
  @POD@
  containers:
  {%- for c in system.containers %}
  - name: {{ c.name }}
    image: {{ c.image }}
    @CONTAINER@
  {%- endfor %}
"""

# (rule, level, pod fields, container fields, annotations, field named in the message)
CASES = [
    ("Host Namespaces", "baseline", "hostNetwork: true", "", "{}", "hostNetwork"),
    ("Host Namespaces", "baseline", "hostPID: true", "", "{}", "hostPID"),
    ("Host Namespaces", "baseline", "hostIPC: true", "", "{}", "hostIPC"),
    ("Privileged Containers", "baseline", "", "securityContext: {privileged: true}", "{}", "privileged"),
    ("Capabilities", "baseline", "", "securityContext: {capabilities: {add: [SYS_ADMIN]}}", "{}",
     "capabilities.add[0]"),
    ("HostPath Volumes", "baseline", "volumes: [{name: h, hostPath: {path: /}}]", "", "{}", "volumes[0].hostPath"),
    ("Host Ports", "baseline", "", "ports: [{containerPort: 80, hostPort: 8080}]", "{}", "hostPort"),
    ("AppArmor", "baseline", "", "securityContext: {appArmorProfile: {type: Unconfined}}", "{}",
     "appArmorProfile.type"),
    ("AppArmor", "baseline", "", "", "{container.apparmor.security.beta.kubernetes.io/web: unconfined}",
     "apparmor"),
    ("SELinux", "baseline", "", "securityContext: {seLinuxOptions: {type: spc_t}}", "{}", "seLinuxOptions.type"),
    ("/proc Mount Type", "baseline", "", "securityContext: {procMount: Unmasked}", "{}", "procMount"),
    ("Seccomp", "baseline", "securityContext: {seccompProfile: {type: Unconfined}}", "", "{}", "seccompProfile"),
    ("Sysctls", "baseline", "securityContext: {sysctls: [{name: kernel.msgmax, value: '1'}]}", "", "{}", "sysctls"),
    ("HostProcess", "baseline", "securityContext: {windowsOptions: {hostProcess: true}}", "", "{}", "hostProcess"),
    ("Volume Types", "restricted", "volumes: [{name: n, nfs: {server: s, path: /}}]", "", "{}", "volumes[0].nfs"),
    ("Privilege Escalation", "restricted", "", "", "{}", "allowPrivilegeEscalation"),
    ("Running as Non-root", "restricted", "", "securityContext: {allowPrivilegeEscalation: false}", "{}",
     "runAsNonRoot"),
]
IDS = [f"{c[0]}-{c[5]}" for c in CASES]


def template_config(tmp_path, pod="", container="", annotations="{}", level=None):
    directory = tmp_path / "templates"
    directory.mkdir(exist_ok=True)
    text = POD_TEMPLATE.replace("@POD@", pod or "{}").replace("@CONTAINER@", container or "{}")
    # `{}` alone is no YAML mapping entry: write nothing in its place.
    text = text.replace("  {}\n", "").replace("    {}\n", "")
    (directory / "pod.yaml").write_text(text.replace("@ANNOTATIONS@", annotations))
    config = Config("conf/tycho.yaml")
    config["tycho"]["templates"]["paths"] = [str(directory)]
    if level:
        config["tycho"].setdefault("policy", {})["pod_security"] = level
    return config


def assert_names(error, rule, field, level):
    text = error.message
    assert f"violates pod security level {level}" in text, text
    assert f"(rule '{rule}'" in text, text
    assert field in text, text


# ------------------------------------------------------------------ Kubernetes


@pytest.mark.parametrize("rule, level, pod, container, annotations, field", CASES, ids=IDS)
def test_each_rule_refuses_the_start_on_kubernetes_creating_nothing(cluster, tmp_path, rule, level, pod,
                                                                     container, annotations, field):
    config = template_config(tmp_path, pod, container, annotations, level=level)
    system = Tycho(config=config).parse(request())
    cluster.backend.clear_requests()
    with pytest.raises(StartException) as e:
        KubernetesCompute(config).start(system)
    assert_names(e.value, rule, field, level)
    assert cluster.objects(system.identifier) == []
    writes = [r for r in cluster.backend.requests() if r["method"] not in ("GET", "HEAD")]
    assert writes == [], writes
    # One level down, the same pod starts.
    lower = {"baseline": "privileged", "restricted": "baseline"}[level]
    config["tycho"]["policy"]["pod_security"] = lower
    result = KubernetesCompute(config).start(system)
    cluster.guids.append(result["sid"])
    assert cluster.of_kind(system.identifier, "Deployment")


def test_cap_add_sys_admin_is_refused_at_baseline_on_kubernetes(cluster):
    system = Tycho().parse(request({"cap_add": ["SYS_ADMIN"]}))
    with pytest.raises(StartException) as e:
        KubernetesCompute(Config()).start(system)
    assert_names(e.value, "Capabilities", "containers[0].securityContext.capabilities.add[0]", "baseline")
    assert "service 'web'" in e.value.message and '"SYS_ADMIN"' in e.value.message
    assert cluster.objects(system.identifier) == []


def test_environment_overrides_the_level(cluster, monkeypatch):
    monkeypatch.setenv("TYCHO_POD_SECURITY", "privileged")
    system = Tycho().parse(request({"cap_add": ["SYS_ADMIN"]}))
    result = KubernetesCompute(Config()).start(system)
    cluster.guids.append(result["sid"])
    (deployment,) = cluster.of_kind(system.identifier, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"]["add"] == ["SYS_ADMIN"]


def test_resource_ceilings_name_the_value_and_the_ceiling(cluster):
    config = Config("conf/tycho.yaml")
    config["tycho"]["policy"] = {"max": {"cpus": "1", "memory": "2Gi"}}
    over = request({"deploy": {"resources": {"limits": {"cpus": "1.5", "memory": "1G"}}}})
    system = Tycho(config=config).parse(over)
    with pytest.raises(StartException) as e:
        KubernetesCompute(config).start(system)
    assert "asks for 1.5 cpus (web 1.5), above the ceiling tycho.policy.max.cpus = 1" in str(e.value)
    assert cluster.objects(system.identifier) == []
    under = Tycho(config=config).parse(request({"deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G"}}}}))
    result = KubernetesCompute(config).start(under)
    cluster.guids.append(result["sid"])


def test_rest_server_answers_400_and_the_client_raises_start_exception(cluster, tmp_path, monkeypatch):
    server = Server(tmp_path, cluster.kubeconfig).wait_listening()
    try:
        code, _, body = call("POST", server.url + "/system/start", request({"cap_add": ["SYS_ADMIN"]}))
        assert code == 400, body
        assert body["status"] == "error" and "(rule 'Capabilities'" in body["message"], body
        assert "containers[0].securityContext.capabilities.add[0]" in body["message"], body
        monkeypatch.setenv("REST_API", "true")
        with pytest.raises(StartException) as e:
            TychoClient(url=server.url).start(request({"cap_add": ["SYS_ADMIN"]}))
        assert "SYS_ADMIN" in str(e.value) and "Capabilities" in str(e.value)
        assert [o for o in cluster.backend.objects() if o.get("kind") == "Deployment"] == []
    finally:
        server.stop()


# ------------------------------------------------------------------ CLI, offline


def tycho(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "tycho", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **(env or {})))


COMPOSE_SYS_ADMIN = """
services:
  web:
    image: nginx:1.27
    cap_add: [SYS_ADMIN]
"""


def test_render_refuses_with_one_line_and_pod_security_lowers_it():
    out = tycho("render", "-f", "-", "-n", "web", stdin=COMPOSE_SYS_ADMIN)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tycho: error: "), out.stderr
    assert "service 'web'" in lines[0] and "rule 'Capabilities'" in lines[0] and "baseline" in lines[0]
    ok = tycho("render", "-f", "-", "-n", "web", "--pod-security", "privileged", "-o", "json", stdin=COMPOSE_SYS_ADMIN)
    assert ok.returncode == 0, ok.stderr
    strict = tycho("render", "-f", "-", "-n", "web", "--pod-security", "restricted",
                   stdin="services:\n  web:\n    image: nginx:1.27\n")
    assert strict.returncode == 1 and "violates pod security level restricted" in strict.stderr, strict.stderr


# ------------------------------------------------------------------ the HeLx catalogue


def corpus_apps():
    import yaml

    registry = yaml.safe_load((CORPUS / "app-registry.yaml").read_text())
    seen = {}
    for context, body in registry["contexts"].items():
        for app in (body.get("apps") or {}):
            seen.setdefault(app, context)
    return sorted(seen.items())


def restricted_list_of_the_docs():
    text = (ROOT / "docs" / "security.md").read_text()
    match = re.search(r"<!-- restricted-apps -->(.*?)<!-- /restricted-apps -->", text, re.S)
    assert match, "docs/security.md lists the catalogue apps that pass restricted between restricted-apps markers"
    return sorted(re.findall(r"`([a-z0-9-]+)`", match.group(1)))


def test_the_helx_catalogue_passes_baseline_and_the_docs_list_restricted():
    if not (CORPUS / "app-registry.yaml").is_file():
        pytest.skip(f"the HeLx corpus is not at {CORPUS} (set TYCHO_HELX_CORPUS)")
    passing_restricted = []
    for app, context in corpus_apps():
        base = ["render", "--registry", str(CORPUS), "--product", context, "--app", app, "-o", "json"]
        out = tycho(*base)
        assert out.returncode == 0, f"{app} ({context}) at baseline: {out.stderr}"
        if tycho(*base, "--pod-security", "restricted").returncode == 0:
            passing_restricted.append(app)
    assert restricted_list_of_the_docs() == sorted(passing_restricted)


# ------------------------------------------------------------------ Docker

ENGINE = Engine()


@pytest.fixture
def engine():
    if not ENGINE.reachable():
        reason = f"no Docker Engine answers at {ENGINE.path}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the Docker backplane tests must run in CI")
        pytest.skip(reason)
    return ENGINE


@pytest.mark.parametrize("rule, level, pod, container, annotations, field", CASES, ids=IDS)
def test_each_rule_refuses_the_start_on_docker_creating_nothing(engine, tmp_path, monkeypatch, rule, level, pod,
                                                                 container, annotations, field):
    monkeypatch.setenv("TYCHO_DOCKER_ENV_DIR", str(tmp_path / "env"))
    config = template_config(tmp_path, pod, container, annotations, level=level)
    system = Tycho(backplane="docker", config=config).parse(request())
    try:
        with pytest.raises(StartException) as e:
            DockerComposeCompute(config=config).start(system)
        assert_names(e.value, rule, field, level)
        assert engine.leftovers(system.identifier) == {"containers": [], "networks": [], "volumes": []}
    finally:
        engine.purge(system.identifier)


def test_cap_add_sys_admin_is_refused_at_baseline_on_docker(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("TYCHO_DOCKER_ENV_DIR", str(tmp_path / "env"))
    system = Tycho(backplane="docker").parse(request({"cap_add": ["SYS_ADMIN"]}))
    try:
        with pytest.raises(StartException) as e:
            DockerComposeCompute(config=Config()).start(system)
        message = e.value.message
        assert "service 'web'" in message and '"SYS_ADMIN"' in message and "rule 'Capabilities'" in message
        assert engine.leftovers(system.identifier) == {"containers": [], "networks": [], "volumes": []}
    finally:
        engine.purge(system.identifier)


# ------------------------------------------------------------------ the registry's count

COUNT_REGISTRY = """
api: Tycho
version: 0.1.0
repositories:
  local:
    url: apps
contexts:
  top:
    apps:
      web:
        name: Web
        count: 1
        services:
          web: 80
"""


@pytest.fixture
def count_registry(tmp_path):
    (tmp_path / "reg" / "apps" / "web").mkdir(parents=True)
    (tmp_path / "reg" / "app-registry.yaml").write_text(COUNT_REGISTRY)
    (tmp_path / "reg" / "app-defaults.yaml").write_text("{}\n")
    (tmp_path / "reg" / "apps" / "web" / "docker-compose.yaml").write_text(
        'version: "3"\nservices:\n  web:\n    image: nginx:1.27\n    ports: ["80"]\n')
    with serve(tmp_path / "reg") as url:
        yield url


@pytest.fixture
def enforce_count(monkeypatch):
    """tycho.policy.enforce_count on the in-process executor TychoContext.start uses."""
    from tycho import actions

    conf = actions.tycho().config
    monkeypatch.setitem(conf["tycho"], "policy", {"enforce_count": True})
    return conf


def deployments_of(cluster, username):
    return [o for o in cluster.backend.objects()
            if o.get("kind") == "Deployment" and o["metadata"]["labels"].get("username") == username]


def test_count_limits_a_users_instances_through_tycho_context(cluster, count_registry, enforce_count):
    from tycho.context import Principal, TychoContext

    context = TychoContext(product="top", tycho_config_url=count_registry)
    first = context.start(Principal("jdoe"), "web", None, "h.example.org")
    cluster.guids.append(first.identifier)
    with pytest.raises(StartException) as e:
        context.start(Principal("jdoe"), "web", None, "h.example.org")
    assert "user jdoe already runs 1 instance(s) of app web" in e.value.message, e.value.message
    assert "count is 1 (tycho.policy.enforce_count)" in e.value.message
    assert len(deployments_of(cluster, "jdoe")) == 1
    # Another user is not counted against jdoe; after a delete, jdoe may start again.
    other = context.start(Principal("alice"), "web", None, "h.example.org")
    cluster.guids.append(other.identifier)
    context.delete({"name": first.identifier})
    again = context.start(Principal("jdoe"), "web", None, "h.example.org")
    cluster.guids.append(again.identifier)


def test_count_is_not_enforced_by_default(cluster, count_registry):
    from tycho.context import Principal, TychoContext

    context = TychoContext(product="top", tycho_config_url=count_registry)
    for _ in range(2):
        cluster.guids.append(context.start(Principal("jdoe"), "web", None, "h").identifier)
    assert len(deployments_of(cluster, "jdoe")) == 2


def test_two_concurrent_starts_do_not_both_pass(cluster, count_registry, enforce_count):
    """Both starts pass the first check (each request to the emulator is slowed, so
    they overlap); the check after the Deployment exists lets at most one through, and
    a refused start leaves nothing."""
    import threading

    from tycho.context import Principal, TychoContext

    context = TychoContext(product="top", tycho_config_url=count_registry)
    context.get_spec("web")  # fetched once, outside the race
    cluster.backend.latency(40)
    for round_ in range(4):
        user = f"racer{round_}"
        barrier = threading.Barrier(2)
        outcomes = []

        def start(user=user, barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                outcomes.append(("ok", context.start(Principal(user), "web", None, "h").identifier))
            except StartException as e:
                outcomes.append(("refused", e.message))

        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        passed = [guid for kind, guid in outcomes if kind == "ok"]
        cluster.guids.extend(passed)
        assert len(outcomes) == 2 and len(passed) <= 1, outcomes
        for kind, message in outcomes:
            if kind == "refused":
                assert "tycho.policy.enforce_count" in message, message
        assert len(deployments_of(cluster, user)) == len(passed), outcomes
